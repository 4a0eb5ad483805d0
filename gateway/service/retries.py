"""One retry mechanism for every protocol (issue #14 item 8).

A transaction is identified by protocol, the client's transaction id and a digest of the
request itself (:func:`request_digest`). A *repeat* -- same protocol, transaction id and
digest -- gets the recorded outcome (a request still ``received`` is resubmitted; the CA is
idempotent per request id), never a second certificate. A *different* request under the same
transaction id (a corrected subject after a refusal, new names after an issuance) is judged
afresh as the next *attempt* of the transaction; it is never answered with another request's
outcome. Two rules bound that:

* a transaction belongs to one key: another key under the same id is a :class:`Conflict`
  (the id is the client's, and another key is another client);
* while the newest attempt is undecided (``received``/``pending``), a different request is a
  :class:`Conflict` naming it, so one transaction never has two requests waiting.

Storage: attempt 1 is stored under the client's id, attempt *n* under ``<id>#<n>``
(:func:`attempt_key`), so the store's unique (protocol, transaction_id) key also makes
concurrent identical attempts collide instead of issuing twice; a transaction has at most
:data:`MAX_ATTEMPTS`. The digest is recomputed from the stored CSR when needed (only when a
transaction id is seen again), so requests stored before this mechanism keep working.
Protocols keep only their wire part: which id the client sent (SCEP's transactionID, an ACME
order, a WSTEP RequestID) or how one is derived (EST has none).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from cryptography.x509.oid import AttributeOID

from gateway.errors import BadCSR, BadRequest, Conflict, NotFound
from gateway.model import AttemptHead, PendingReason, RequestRecord, RequestState
from gateway.pkix.der import element_length, header_length, oid

#: Attempts a transaction may have; afterwards the client must start a new transaction.
MAX_ATTEMPTS = 16
#: States in which an attempt is still undecided.
WAITING = frozenset({RequestState.RECEIVED, RequestState.PENDING})
_SEPARATOR = "#"

#: A stored attempt as the retry logic reads it: the whole record or its head.
Attempt = AttemptHead | RequestRecord
_R = TypeVar("_R", AttemptHead, RequestRecord)


class AttemptsUsedUp(BadRequest):
    """The transaction already has :data:`MAX_ATTEMPTS` attempts, none of them this request:
    the client must start a new transaction (or its front-end opens the next generation)."""


@dataclass(frozen=True)
class NextAttempt:
    """A request its transaction has not seen: judged afresh as the attempt stored under
    ``key`` (the next one, from the attempts just read)."""

    key: str


class RequestLookup(Protocol):
    """The store methods the attempts of a transaction are read with."""

    async def find_request(self, protocol: str, transaction_id: str) -> RequestRecord | None:
        """The request stored under exactly this (protocol, transaction key), if any."""
        ...

    async def find_attempts(
        self, protocol: str, transaction_ids: Sequence[str]
    ) -> dict[str, AttemptHead]:
        """The attempts stored under any of these exact keys, by key (absent ones left out)."""
        ...


_CHALLENGE_PASSWORD = oid(AttributeOID.CHALLENGE_PASSWORD.dotted_string)


def request_digest(csr_der: bytes) -> str:
    """Hex SHA-256 of what a PKCS#10 request asks for: its CertificationRequestInfo (RFC 2986
    §4.1: version, subject, public key, attributes -- among them the requested extensions)
    without the challengePassword attribute.

    Not the CSR's DER: the signature is not the request (an ECDSA re-signature differs every
    time), and the challengePassword is the authentication of an attempt, not what it asks for
    (EST re-creates it with each TLS session's tls-unique, RFC 7030 §3.5; SCEP clients fetch a
    fresh challenge). Not only key + subject + extensions either: every other attribute the
    client asked for is part of the request too. :class:`BadCSR` if ``csr_der`` does not have
    the shape of a PKCS#10 request."""
    der = csr_der
    try:
        info = header_length(der, 0)
        end = info + element_length(der, info)
        start = offset = info + header_length(der, info)
        for _ in range(3):  # version, subject, subjectPKInfo
            offset += element_length(der, offset)
        if offset > end or end > len(der):
            raise IndexError
        digest = hashlib.sha256(der[start:offset])
        if offset < end and der[offset] == 0xA0:  # attributes [0] IMPLICIT SET OF Attribute
            offset += header_length(der, offset)
            while offset < end:
                size = element_length(der, offset)
                attribute = der[offset : offset + size]
                kind = header_length(attribute, 0)
                if attribute[kind : kind + element_length(attribute, kind)] != _CHALLENGE_PASSWORD:
                    digest.update(attribute)
                offset += size
    except IndexError:
        raise BadCSR("the CSR is truncated") from None
    return digest.hexdigest()


def attempt_key(transaction_id: str, attempt: int) -> str:
    """The stored transaction key of ``attempt`` (1 = the client's own id)."""
    return transaction_id if attempt <= 1 else f"{transaction_id}{_SEPARATOR}{attempt}"


def same_request(stored: Attempt, digest: str) -> bool:
    """True if ``stored`` asked for what a request with ``digest`` asks for."""
    try:
        return request_digest(stored.csr_der) == digest
    except BadCSR:
        return False


async def attempts(store: RequestLookup, protocol: str, transaction_id: str) -> list[AttemptHead]:
    """Every stored attempt of a transaction, oldest first (empty if it is new): the keys of
    all :data:`MAX_ATTEMPTS` in one query. Attempts are stored one after the other (the next
    only once the newest is decided), so they run from 1 to the first key absent.

    Why one query: a client that keeps its key (a SCEP device renewing, an EST client
    enrolling again with the same key, a load driver's key pool) fills its transaction's
    attempts, and a lookup per attempt made every such enrollment up to 17 store calls. Heads,
    not whole records: decoding every attempt's full row was most of such a lookup."""
    keys = attempt_keys(transaction_id)
    return contiguous(await store.find_attempts(protocol, keys), keys)


def attempt_keys(transaction_id: str) -> list[str]:
    """The stored keys of every attempt a transaction may have, first to last."""
    return [attempt_key(transaction_id, n) for n in range(1, MAX_ATTEMPTS + 1)]


def contiguous(stored: Mapping[str, _R], keys: Sequence[str]) -> list[_R]:
    """The records of ``keys`` found in ``stored``, up to the first key absent: a
    transaction's attempts from a lookup of :func:`attempt_keys` (and perhaps other keys)."""
    found: list[_R] = []
    for key in keys:
        record = stored.get(key)
        if record is None:
            break
        found.append(record)
    return found


async def generations(
    first_of: Callable[[int], Awaitable[_R | None]], first: _R | None
) -> tuple[int, _R | None]:
    """How many generations of a client's transaction are stored, and the first attempt of
    the newest (``(0, None)`` if none): doubling, then bisection, so O(log n) lookups.

    A *generation* is the transaction a client's next requests go to once one has no attempts
    left (or, in EST, once a request is sent again after its retry window): a client whose id
    never changes (EST's derived id, a SCEP transactionID fixed per device) would otherwise be
    refused for good after :data:`MAX_ATTEMPTS` requests. Generations are contiguous from 0,
    each opened by storing its first attempt (so concurrent openings collide on the store's
    unique key). ``first_of(g)`` looks up generation ``g``'s first attempt; ``first`` is
    generation 0's, looked up already."""
    if first is None:
        return 0, None
    newest = first
    present, absent = 0, 1
    while (record := await first_of(absent)) is not None:
        present, absent, newest = absent, absent * 2, record
    while absent - present > 1:
        middle = (present + absent) // 2
        record = await first_of(middle)
        if record is None:
            absent = middle
        else:
            present, newest = middle, record
    return present + 1, newest


async def latest(store: RequestLookup, protocol: str, transaction_id: str) -> RequestRecord | None:
    """The newest attempt of a transaction (what a poll by transaction id follows)."""
    found = await attempts(store, protocol, transaction_id)
    return await record_of(store, protocol, found[-1]) if found else None


async def head_at(store: RequestLookup, protocol: str, key: str) -> AttemptHead | None:
    """The attempt stored under exactly ``key``, if any (a generation's first attempt)."""
    return (await store.find_attempts(protocol, (key,))).get(key)


async def record_of(store: RequestLookup, protocol: str, attempt: Attempt) -> RequestRecord:
    """The whole stored record of ``attempt`` (read again if it is only a head)."""
    if isinstance(attempt, RequestRecord):
        return attempt
    record = await store.find_request(protocol, attempt.transaction_id)
    if record is None or record.id != attempt.id:  # requests are never deleted
        raise NotFound(f"request {attempt.id} is no longer stored")
    return record


def check_key(stored: Attempt, spki_sha256: str, transaction_id: str) -> None:
    """``Conflict`` if the transaction was opened for another key."""
    if stored.spki_sha256 != spki_sha256:
        raise Conflict(f"transaction {transaction_id!r} was already used with a different key")


def repeated(tried: Sequence[_R], digest: str) -> _R | None:
    """The attempt (newest first) that made the same request, if any."""
    for earlier in reversed(tried):
        if same_request(earlier, digest):
            return earlier
    return None


def next_attempt(tried: Sequence[Attempt], transaction_id: str) -> str:
    """The key under which a different request is judged afresh; ``Conflict`` while the
    newest attempt is undecided, :class:`AttemptsUsedUp` once the transaction has none left."""
    newest = tried[-1]
    if newest.state in WAITING:
        waiting_for = (
            "certificate manager approval"
            if newest.pending_reason is PendingReason.APPROVAL
            else "the CA"
        )
        raise Conflict(
            f"transaction {transaction_id!r} has a request pending for another CSR (request "
            f"{newest.id}, waiting for {waiting_for}): send that CSR again to learn its "
            "outcome; a different CSR is judged once it is decided"
        )
    if len(tried) >= MAX_ATTEMPTS:
        raise AttemptsUsedUp(
            f"transaction {transaction_id!r} already has {MAX_ATTEMPTS} attempts; start a new "
            "transaction"
        )
    return attempt_key(transaction_id, len(tried) + 1)
