"""Which stored request answers a SCEP transaction (RFC 8894 §3.2.1.1, §3.3.3, §5.2).

The service stores one request per (protocol, transaction key). A client's transactionID is
the key of its first attempt. A refused attempt (FAILURE) is not the end of the transaction:
when the same client (same key) sends a *different* CSR under the same transactionID -- it
fixed its subject, or got a fresh challenge -- that message is judged afresh as attempt 2,
stored under ``<transactionID>#2``, and so on; only a repeat of the same request (the same
CertificationRequestInfo, however often re-signed) replays the stored outcome (a
retransmission, RFC 8894 §3.2.1.1). The same holds after an issuance: clients derive the
transactionID from the key (RFC 8894 §3.2.1.1 recommends it), so a device that asks for new
names with its old key is judged afresh rather than handed the old certificate. While an
attempt is pending, a different CSR is refused. CertPoll and retries follow the newest
attempt. ``#`` cannot occur in a PrintableString, so no client transactionID collides with an
attempt key (and :func:`check_client_id` refuses one that tries).
"""

from __future__ import annotations

from cryptography import x509

from gateway.model import RequestRecord, RequestState
from gateway.pkix.csr import csr_der
from protocols.scep.messages import FailInfo, MessageError
from protocols.scep.ports import Records

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


async def attempts(store: Records, base: str) -> list[RequestRecord]:
    """Every stored attempt of transaction ``base``, oldest first (empty if it is new). Costs
    one lookup per attempt and one more; transactions with several attempts are rare."""
    found: list[RequestRecord] = []
    while len(found) < MAX_ATTEMPTS:
        record = await store.find_request("scep", attempt_key(base, len(found) + 1))
        if record is None:
            break
        found.append(record)
    return found


async def latest(store: Records, base: str) -> tuple[RequestRecord | None, int]:
    """The newest stored attempt of transaction ``base`` and its number (``(None, 0)`` if
    the transaction is new)."""
    found = await attempts(store, base)
    return (found[-1], len(found)) if found else (None, 0)


def same_request(stored_csr_der: bytes, csr: x509.CertificateSigningRequest) -> bool:
    """True if ``csr`` asks for what the stored attempt's CSR asked for: the same
    CertificationRequestInfo (RFC 2986 §4.1: subject, key, attributes and with them the
    challenge). A re-signed CSR (ECDSA signatures differ each time) is the same request."""
    if stored_csr_der == csr_der(csr):
        return True
    try:
        return x509.load_der_x509_csr(stored_csr_der).tbs_certrequest_bytes == (
            csr.tbs_certrequest_bytes
        )
    except (ValueError, x509.InvalidVersion):
        return False


def next_attempt(base: str, attempt: int) -> str:
    """The key for judging a changed CSR after attempt ``attempt`` was refused or issued."""
    if attempt >= MAX_ATTEMPTS:
        raise MessageError(
            FailInfo.BAD_REQUEST,
            f"this transaction already has {MAX_ATTEMPTS} attempts; start a new transaction",
        )
    return attempt_key(base, attempt + 1)
