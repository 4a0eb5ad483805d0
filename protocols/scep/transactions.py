"""SCEP's wire part of a transaction (RFC 8894 §3.2.1.1, §3.3.3): the client's transactionID.

Retries, attempts and replay are the service's (:mod:`gateway.service.retries`): a repeat of
the same request (the same CertificationRequestInfo apart from its challenge, however often
re-signed) gets the recorded outcome, a different CSR under the same transactionID is judged
afresh as the transaction's next attempt (stored under ``<transactionID>#<n>``), and one
pending is never joined by another. What stays here:

* ``#`` cannot occur in a PrintableString, so a client transactionID that contains it is
  refused (it could name another attempt or generation);
* generations: many clients keep one transactionID for every enrollment of a key or device
  (RFC 8894 §3.2.1.1 names a device's EUI as an example; jscep, xipki and sscep hash the
  public key). Once a transactionID's attempts are used up, its next different CSR opens the
  next generation (``<transactionID>#g<k>``, attempts ``<transactionID>#g<k>#<n>``) instead
  of being refused for good. A repeat is looked for in the newest generation and the one
  before it (an attempt answered just before the newest generation opened), as EST does;
  generation 0 is the transactionID itself, so requests stored before generations existed
  are its attempts, and nothing is looked up beyond them until they are used up;
* CertPoll follows the newest attempt of the newest generation.
"""

from __future__ import annotations

from cryptography import x509

from gateway.model import AttemptHead, Outcome, RequestRecord
from gateway.service.retries import (
    MAX_ATTEMPTS,
    AttemptsUsedUp,
    NextAttempt,
    RequestLookup,
    attempts,
    generations,
    head_at,
    record_of,
)
from protocols.scep.messages import FailInfo, MessageError
from protocols.scep.ports import Enrollment

PROTOCOL = "scep"
_SEPARATOR = "#"


def check_client_id(transaction_id: str) -> None:
    """Refuse a client transactionID that uses the attempt separator (not PrintableString)."""
    if _SEPARATOR in transaction_id:
        raise MessageError(FailInfo.BAD_REQUEST, "the transactionID may not contain '#'")


def generation_id(base: str, generation: int) -> str:
    """The stored id of generation ``generation`` of transactionID ``base`` (0: ``base``)."""
    return base if generation == 0 else f"{base}{_SEPARATOR}g{generation}"


async def _count(store: RequestLookup, base: str, first: AttemptHead | None) -> int:
    """How many generations of ``base`` are stored (``first``: generation 0's first attempt)."""

    async def first_of(generation: int) -> AttemptHead | None:
        return await head_at(store, PROTOCOL, generation_id(base, generation))

    count, _ = await generations(first_of, first)
    return count


async def place(
    service: Enrollment, store: RequestLookup, base: str, csr: x509.CertificateSigningRequest
) -> tuple[Outcome | NextAttempt | None, str]:
    """Where a PKCSReq/RenewalReq under transaction key ``base`` goes: what the service's
    ``repeat_of`` says of it (the recorded outcome of the attempt it repeats, the key of the
    next attempt, or None for a transaction to open) and the transaction id to enroll it
    under. ``Conflict`` for another key or while a different request waits."""
    try:
        return await service.repeat_of(PROTOCOL, base, csr), base
    except AttemptsUsedUp:  # none of generation 0's attempts is this request
        pass
    count = await _count(store, base, await head_at(store, PROTOCOL, base))
    if count < 2:
        return None, generation_id(base, 1)
    current = generation_id(base, count - 1)
    found = await _repeat(service, current, csr)
    if found is not None and not isinstance(found, NextAttempt):
        return found, current
    if count > 2:  # generation 0 was looked at first
        before = generation_id(base, count - 2)
        earlier = await _repeat(service, before, csr)
        if earlier is not None and not isinstance(earlier, NextAttempt):
            return earlier, before
    if found is None:  # the newest generation is used up too
        return None, generation_id(base, count)
    return found, current


async def _repeat(
    service: Enrollment, transaction_id: str, csr: x509.CertificateSigningRequest
) -> Outcome | NextAttempt | None:
    """``repeat_of`` for a stored generation; None when its attempts are used up."""
    try:
        return await service.repeat_of(PROTOCOL, transaction_id, csr)
    except AttemptsUsedUp:
        return None


async def latest(store: RequestLookup, base: str) -> tuple[RequestRecord | None, int]:
    """The newest stored attempt of transaction ``base`` (its newest generation's) and its
    number within that generation (``(None, 0)`` if the transaction is new)."""
    found = await attempts(store, PROTOCOL, base)
    if len(found) >= MAX_ATTEMPTS:
        count = await _count(store, base, found[0])
        if count > 1:
            found = await attempts(store, PROTOCOL, generation_id(base, count - 1))
    if not found:
        return None, 0
    return await record_of(store, PROTOCOL, found[-1]), len(found)
