"""SCEP's wire part of a transaction (RFC 8894 §3.2.1.1, §3.3.3): the client's transactionID.

Retries, attempts and replay are the service's (:mod:`gateway.service.retries`): a repeat of
the same request (the same CertificationRequestInfo apart from its challenge, however often
re-signed) gets the recorded outcome, a different CSR under the same transactionID is judged
afresh as the transaction's next attempt (stored under ``<transactionID>#<n>``), and one
pending is never joined by another. What stays here: ``#`` cannot occur in a PrintableString,
so a client transactionID that contains it is refused (it could name another attempt), and
CertPoll follows the newest attempt.
"""

from __future__ import annotations

from gateway.model import RequestRecord
from gateway.service.retries import RequestLookup, attempts
from protocols.scep.messages import FailInfo, MessageError

PROTOCOL = "scep"
_SEPARATOR = "#"


def check_client_id(transaction_id: str) -> None:
    """Refuse a client transactionID that uses the attempt separator (not PrintableString)."""
    if _SEPARATOR in transaction_id:
        raise MessageError(FailInfo.BAD_REQUEST, "the transactionID may not contain '#'")


async def latest(store: RequestLookup, base: str) -> tuple[RequestRecord | None, int]:
    """The newest stored attempt of transaction ``base`` and its number (``(None, 0)`` if
    the transaction is new)."""
    found = await attempts(store, PROTOCOL, base)
    return (found[-1], len(found)) if found else (None, 0)
