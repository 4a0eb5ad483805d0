"""EST's wire part of a transaction: RFC 7030 gives the client no transaction id, so certgate
derives one; repeats, attempts and replay are the service's (:mod:`gateway.service.retries`).

EST's transaction id is who asks, for which key, how (§4.2.3: after a 202 the client "sends the
same request repeatedly"; it has nothing else to name it by):

    key = sha256(label, template, authenticated principal, SPKI, operation, prior certificate)
    transaction_id = key + "." + generation

and the service adds the request digest (:func:`gateway.service.request_digest`: the
CertificationRequestInfo without the challengePassword, so a CSR re-signed or re-created with a
new session's tls-unique, §3.5, is still the same request). A repeat of an attempt of that
transaction is answered with its recorded outcome, never issued twice; a different CSR for the
same key is judged afresh as the transaction's next attempt (``<id>#<n>``, issue #12: a CSR for
CN=second never gets the CN=first certificate), and refused with 409 naming the waiting request
while the newest attempt is still received or pending (one key never has two requests waiting
for a certificate manager or the CA; resending that CSR polls it).

What stays EST's, because its transaction has no end the client could mark:

* the retry window: a repeat is a retry only while the attempt it repeats is *open* --
  received or pending, decided after a 202 but not yet picked up, or answered less than
  ``[est] retry_window`` ago (default 5 minutes, so an answer lost on the wire is sent again).
  The same CSR after that is a later enrollment that goes through policy again; the service
  would replay it within the transaction, so it opens the next *generation* (a new transaction,
  ``key.<g+1>``). So does a CSR that finds its generation's attempts used up.
* repeats are looked for in the newest generation and the one before it (a request answered
  within the window stays there when the same key's other CSR opens a new one). Only a 202 that
  was decided and never picked up while two later generations were opened is older: its repeat
  is judged afresh.
* 202 bookkeeping in ``est_deliveries`` by the stored key of the attempt (only transactions
  that answered 202; one answered at once was delivered when it was decided, ``updated_at``).

Generations are contiguous from 0 (each is opened by storing its first attempt, and concurrent
openings collide on the store's unique (protocol, transaction id)), so the newest is found in
O(log n) exact lookups; generation 0 of this form and of the previous version's are asked in
one query, so a new enrollment costs one lookup.

Requests stored by earlier versions:

* ``key.<generation>`` (the first form: one request per generation) *is* this form: such a
  request is attempt 1 of its generation, its digest computed from the CSR stored with it.
* ``key.<fingerprint[:32]>.<generation>`` (the previous version: one transaction per key and
  request fingerprint, which is the service's digest): a CSR that repeats no open attempt of
  this form is looked up under that form by its own digest, and an open request found there is
  answered (a pending approval from before the upgrade finishes when the client polls).
  Not carried over: such a waiting request does not refuse a *different* CSR with 409 (it is
  found only by its own CSR), and a chain of that form continued from a first-form request
  (``key.<fp>.<g>`` with g > 0 but no ``key.<fp>.0``) is not found.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from gateway.errors import Conflict
from gateway.model import AttemptHead, PendingReason, RequestKind
from gateway.service.retries import (
    WAITING,
    Attempt,
    AttemptsUsedUp,
    RequestLookup,
    attempt_keys,
    attempts,
    contiguous,
    generations,
    head_at,
    next_attempt,
    repeated,
)
from protocols.est.state import EstState

PROTOCOL = "est"
#: Hex digits of the request fingerprint in the previous version's ids (128 bits).
_LEGACY_FINGERPRINT = 32


class TransactionLookup(RequestLookup, Protocol):
    """The store lookups of a transaction: exact keys, one or several at once (the attempts'
    heads, :class:`gateway.model.AttemptHead`)."""


@dataclass(frozen=True)
class Transaction:
    """Where a request goes: it is enrolled under ``transaction_id``. A retry repeats the open
    attempt ``request_id``, stored under the key ``attempt``."""

    transaction_id: str
    #: an earlier attempt made the same request and is still open (this is a retry)
    retry: bool
    request_id: str | None = None
    attempt: str | None = None
    #: a new request's key when it is not the transaction's first attempt: the next one, from
    #: the attempts read here (the service stores it there at once instead of colliding with
    #: attempt 1 first, judging the request, and reading the attempts again)
    store_as: str | None = None


def transaction_key(
    label: str, template: str, principal: str, spki: str, kind: RequestKind, prior: str | None
) -> str:
    """SHA-256 (hex) of who asks for which key how: the stem of EST's transaction ids."""
    material = "\x1f".join((label, template, principal, spki, kind.value, prior or "-"))
    return hashlib.sha256(material.encode()).hexdigest()


def generation_id(key: str, generation: int) -> str:
    """The transaction id of a key's ``generation`` (0 first)."""
    return f"{key}.{generation}"


async def find_transaction(
    store: TransactionLookup,
    state: EstState,
    *,
    label: str,
    template: str,
    principal: str,
    spki: str,
    kind: RequestKind,
    prior: str | None,
    digest: str,
    retry_window: int,
    now: datetime,
) -> Transaction:
    """The transaction a request belongs to (see the module docstring). ``digest`` is the CSR's
    request digest. Raises :class:`Conflict` for a different CSR while the newest attempt of
    the key's transaction is still waiting."""
    key = transaction_key(label, template, principal, spki, kind, prior)
    legacy_stem = f"{key}.{digest[:_LEGACY_FINGERPRINT]}."  # the previous version's id form
    first, second, legacy_first = generation_id(key, 0), generation_id(key, 1), f"{legacy_stem}0"
    # One query answers a key with at most one generation (every new key, and a key enrolling
    # again until its first generation's attempts are used up): generation 0's attempts,
    # whether generation 1 exists, and the previous version's first id.
    gen0_keys = attempt_keys(first)
    firsts = await store.find_attempts(PROTOCOL, (*gen0_keys, second, legacy_first))
    gen0 = contiguous(firsts, gen0_keys)
    if second not in firsts:
        count, latest = len(gen0[:1]), gen0
    else:
        count, _ = await _generations(store, f"{key}.", firsts.get(first))
        latest = await attempts(store, PROTOCOL, generation_id(key, count - 1)) if count else []
    match, generation = repeated(latest, digest), count - 1
    if match is None and count > 1:
        generation = count - 2
        before = (
            gen0
            if generation == 0
            else await attempts(store, PROTOCOL, generation_id(key, generation))
        )
        match = repeated(before, digest)
    if match is not None and await _open(match, state, retry_window, now):
        return _retry(generation_id(key, generation), match)
    _, legacy = await _generations(store, legacy_stem, firsts.get(legacy_first))
    if legacy is not None and await _open(legacy, state, retry_window, now):
        return _retry(legacy.transaction_id, legacy)
    if not latest:
        return Transaction(generation_id(key, 0), retry=False)
    current = generation_id(key, count - 1)
    try:
        following = next_attempt(latest, current)
    except Conflict:
        raise _still_waiting(latest[-1]) from None
    except AttemptsUsedUp:  # the generation's attempts are used up: the next generation
        return Transaction(generation_id(key, count), retry=False)
    if match is not None and generation == count - 1:
        # The same request, closed: within this transaction the service would replay it.
        return Transaction(generation_id(key, count), retry=False)
    return Transaction(current, retry=False, store_as=following)


def _retry(transaction_id: str, attempt: Attempt) -> Transaction:
    return Transaction(
        transaction_id, retry=True, request_id=attempt.id, attempt=attempt.transaction_id
    )


async def _generations(
    store: RequestLookup, stem: str, newest: AttemptHead | None
) -> tuple[int, AttemptHead | None]:
    """How many generations ``<stem>0``, ``<stem>1``, ... are stored, and the first attempt
    of the newest (:func:`gateway.service.retries.generations`). ``newest`` is ``<stem>0``'s
    request (looked up already)."""

    async def first_of(generation: int) -> AttemptHead | None:
        return await head_at(store, PROTOCOL, f"{stem}{generation}")

    return await generations(first_of, newest)


async def _open(attempt: Attempt, state: EstState, retry_window: int, now: datetime) -> bool:
    """True while a repeat of ``attempt`` is a retry: undecided, decided but not yet picked
    up, or answered less than ``retry_window`` seconds ago."""
    if attempt.state in WAITING:
        return True
    delivery = await state.delivery(attempt.transaction_id)
    if delivery is None:
        # Answered at once: the answer left with the response that decided it.
        answered_at: datetime | None = attempt.updated_at
    else:
        answered_at = delivery.delivered_at  # None: approved/decided, not yet picked up
    return answered_at is None or now - answered_at < timedelta(seconds=retry_window)


def _still_waiting(newest: Attempt) -> Conflict:
    waiting_for = (
        "certificate manager approval"
        if newest.pending_reason is PendingReason.APPROVAL
        else "the CA"
    )
    return Conflict(
        f"request {newest.id} for this key is still waiting for {waiting_for}; send that same "
        "CSR again to learn its outcome (RFC 7030 §4.2.3). A different CSR for this key is "
        "judged once it is decided"
    )
