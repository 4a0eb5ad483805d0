"""Standard Webhooks signatures (https://www.standardwebhooks.com, "Verifying webhooks").

Each attempt carries ``webhook-id`` (the outbox event id, the same on every retry, so a
receiver can drop a repeat), ``webhook-timestamp`` (Unix seconds of the attempt) and
``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``. The key is the
configured secret; a secret written as Standard Webhooks prints them, ``whsec_<base64>``, is
used as the bytes it encodes, so the reference receiver libraries accept the signatures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["headers", "signature", "signing_key", "verify"]

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def signing_key(secret: str) -> bytes:
    """The HMAC key of ``secret`` (``whsec_<base64>``: the bytes it encodes; else UTF-8)."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode("utf-8")


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` over ``{id}.{timestamp}.{body}``."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt."""
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, event_id, timestamp, body),
    }


def verify(secret: str, event_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """Whether one of the space-separated ``v1,`` signatures of ``header`` is right."""
    try:
        expected = signature(secret, event_id, int(timestamp), body)
    except ValueError:
        return False
    return any(hmac.compare_digest(expected, given) for given in header.split())
