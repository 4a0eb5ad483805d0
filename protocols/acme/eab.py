"""External account binding (RFC 8555 §7.3.4): keys at rest and binding verification.

HMAC keys must be readable to verify a MAC, so they cannot be hashed: each is encrypted with
AES-256-GCM under ``[acme] eab_encryption_key`` (or ``<data dir>/acme-eab.key``), the kid as
associated data. One key may bind several ACME accounts (cert-manager re-registers with the
same key when its account Secret is lost; fleets share one key), see docs in certgate.toml.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.ports import Transactions
from protocols.acme import jws as J
from protocols.acme.messages import Problem, b64e
from protocols.acme.repository import AcmeRepository


def new_kid() -> str:
    return "kid-" + secrets.token_hex(12)


def new_hmac_key() -> bytes:
    return secrets.token_bytes(32)


def seal(key: bytes, kid: str, secret: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(key).encrypt(nonce, secret, kid.encode())


def unseal(key: bytes, kid: str, sealed: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:12], sealed[12:], kid.encode())
    except (InvalidTag, ValueError):
        raise Problem.server_internal(
            "EAB key cannot be decrypted (wrong eab_encryption_key?)"
        ) from None


@dataclass(frozen=True)
class NewKey:
    """A key just made: ``hmac_key`` (base64url, as clients take it) is shown once, never
    stored in the clear and never listed."""

    kid: str
    hmac_key: str
    principal: str
    templates: list[str]
    domains: list[str]
    created_at: datetime


async def create_key(
    transactions: Transactions,
    repo: AcmeRepository,
    encryption_key: bytes,
    principal: str,
    templates: list[str],
    domains: list[str],
    now: datetime,
) -> NewKey:
    """Make and store (sealed under ``encryption_key``) one EAB key: what ``certgate acme eab
    create`` and the admin API's POST /api/v1/acme/eab-keys both do."""
    kid, secret = new_kid(), new_hmac_key()
    sealed = seal(encryption_key, kid, secret)
    await transactions.write(repo.put_eab_key, kid, principal, templates, domains, sealed, now)
    return NewKey(kid, b64e(secret), principal, templates, domains, now)


@dataclass(frozen=True)
class Binding:
    """A well-formed binding, before its MAC is checked against the stored key."""

    kid: str
    jws: J.JWS


def parse_binding(obj: Any, outer_url: str, outer_jwk: dict[str, Any]) -> Binding:
    """Steps 1, 2 and 5 of RFC 8555 §7.3.4: a flattened JWS, MAC ``alg``, a ``kid``, the outer
    ``url``, no ``nonce``, and the outer account key as payload. ``malformed``/``unauthorized``."""
    if not isinstance(obj, dict):
        raise Problem.malformed("externalAccountBinding must be a JWS object")
    inner = J.parse_jws(obj)
    if inner.alg not in J.MAC_ALGORITHMS:
        raise Problem.malformed("externalAccountBinding must use HS256, HS384 or HS512")
    kid = inner.protected.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Problem.malformed("externalAccountBinding has no 'kid'")
    if "nonce" in inner.protected:
        raise Problem.malformed("externalAccountBinding must not have a 'nonce'")
    if inner.protected.get("url") != outer_url:
        raise Problem.unauthorized("externalAccountBinding 'url' differs from the request URL")
    payload = inner.payload_json()
    if J.public_jwk(payload) != J.public_jwk(outer_jwk) or not J.public_jwk(payload):
        raise Problem.unauthorized("externalAccountBinding payload is not the account key")
    return Binding(kid, inner)


def binding_echo(binding: Binding) -> dict[str, str]:
    """The binding as the account object echoes it (§7.3.4)."""
    jws = binding.jws
    protected, payload = jws.signing_input.decode().split(".")
    return {"protected": protected, "payload": payload, "signature": b64e(jws.signature)}
