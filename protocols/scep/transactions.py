"""Which stored request answers a SCEP transaction (RFC 8894 §3.2.1.1, §3.3.3, §5.2).

The service stores one request per (protocol, transaction key). A client's transactionID is
the key of its first attempt. A refused attempt (FAILURE) is not the end of the transaction:
when the same client (same key) sends a *different* CSR under the same transactionID -- it
fixed its subject, or got a fresh challenge -- that message is judged afresh as attempt 2,
stored under ``<transactionID>#2``, and so on; only a repeat of the same CSR replays the
stored FAILURE (a retransmission, RFC 8894 §3.2.1.1). CertPoll and retries follow the newest
attempt. ``#`` cannot occur in a PrintableString, so no client transactionID collides with an
attempt key (and :func:`check_client_id` refuses one that tries).
"""

from __future__ import annotations

from gateway.model import RequestRecord, RequestState
from gateway.ports import Store
from protocols.scep.messages import FailInfo, MessageError

#: Attempts a transaction may have; afterwards the client must start a new transaction.
MAX_ATTEMPTS = 16
#: States whose CertRep is a FAILURE: a different CSR may try again.
REFUSED = frozenset({RequestState.DENIED, RequestState.FAILED})
_SEPARATOR = "#"


def check_client_id(transaction_id: str) -> None:
    """Refuse a client transactionID that uses the attempt separator (not PrintableString)."""
    if _SEPARATOR in transaction_id:
        raise MessageError(FailInfo.BAD_REQUEST, "the transactionID may not contain '#'")


def attempt_key(base: str, attempt: int) -> str:
    """The service transaction key of ``attempt`` (1 = the client's own transactionID)."""
    return base if attempt <= 1 else f"{base}{_SEPARATOR}{attempt}"


async def latest(store: Store, base: str) -> tuple[RequestRecord | None, int]:
    """The newest stored attempt of transaction ``base`` and its number (``(None, 0)`` if
    the transaction is new). Costs one lookup per attempt; refused transactions are rare."""
    record = await store.find_request("scep", base)
    if record is None:
        return None, 0
    attempt = 1
    while attempt < MAX_ATTEMPTS:
        newer = await store.find_request("scep", attempt_key(base, attempt + 1))
        if newer is None:
            break
        record, attempt = newer, attempt + 1
    return record, attempt


def next_attempt(base: str, attempt: int) -> str:
    """The key for judging a changed CSR after attempt ``attempt`` was refused."""
    if attempt >= MAX_ATTEMPTS:
        raise MessageError(
            FailInfo.BAD_REQUEST,
            f"this transaction was refused {MAX_ATTEMPTS} times; start a new transaction",
        )
    return attempt_key(base, attempt + 1)
