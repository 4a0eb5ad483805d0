"""EST idempotency: an EST request carries no transaction id, so certgate derives one.

RFC 7030 §4.2.3: after a 202 the client "sends the same request repeatedly", possibly in a new
TLS session with a re-created CSR (new tls-unique in its challengePassword, same key; §3.5), so
the CSR *bytes* cannot be the key, but what the CSR asks for can. The transaction is keyed by
(label, template, authenticated principal, SPKI, operation, prior certificate) and the CSR's
request fingerprint -- the service's request digest (:func:`gateway.service.request_digest`:
its CertificationRequestInfo without the challengePassword), so the service's retry mechanism
(:mod:`gateway.service.retries`) recognizes the repeat that this id names:

    transaction_id = sha256(key) + "." + request_fingerprint[:32] + "." + generation

This derivation is EST's wire part (RFC 7030 gives the client no transaction id); replaying a
repeat and judging anything else afresh is the service's. The newest request with that key
and fingerprint stays *open* while it is received or pending,
and until its final answer (certificate or refusal) has been delivered to the client, plus
``[est] retry_window`` (default 5 minutes, so a response lost on the wire is answered again
instead of issuing twice). While open, the same transaction id is reused and the service
returns the recorded outcome: a retry never issues twice. Once it is closed, the same CSR gets
``generation + 1``, a new transaction: a genuine later re-enrollment goes through policy again.

A *different* CSR for the same key is another request, judged afresh (issue #12: a CSR for
CN=second never gets the CN=first certificate, a corrected CSR never gets the old refusal) --
except while an earlier request for the same key is still received or pending: then it is
refused with 409 naming that request, so that one key never has two requests waiting for a
certificate manager or the CA. Resending the pending CSR polls it; once it is decided, the new
CSR is judged.

Only transactions that answered 202 are tracked in ``est_deliveries`` (a request answered at
once was delivered when it was decided, its ``updated_at``), so the common path writes nothing
beyond what the service stores. The id is deterministic, so two concurrent identical first
requests collide on the service's (protocol, transaction id) uniqueness instead of issuing
twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.errors import BadCSR, Conflict
from gateway.model import PendingReason, RequestKind, RequestRecord, RequestState
from gateway.service import request_digest
from protocols.est.ports import Records
from protocols.est.state import EstState


@dataclass(frozen=True)
class Transaction:
    transaction_id: str
    #: an earlier request with this key is still open (this is a retry)
    retry: bool
    request_id: str | None = None


def transaction_key(
    label: str, template: str, principal: str, spki: str, kind: RequestKind, prior: str | None
) -> str:
    material = "\x1f".join((label, template, principal, spki, kind.value, prior or "-"))
    return hashlib.sha256(material.encode()).hexdigest()


async def find_transaction(
    store: Records,
    state: EstState,
    *,
    label: str,
    template: str,
    principal: str,
    spki: str,
    kind: RequestKind,
    prior: str | None,
    request: str,
    retry_window: int,
    now: datetime,
) -> Transaction:
    """The transaction a request belongs to (see the module docstring). ``request`` is the
    CSR's request fingerprint. Raises :class:`Conflict` for a different CSR while an earlier
    request with the same key is still waiting."""
    key = transaction_key(label, template, principal, spki, kind, prior)
    content = request[:_CONTENT_CHARS]
    same: list[tuple[int, RequestRecord]] = []
    waiting: list[RequestRecord] = []
    for record in await store.find_requests_by_key("est", principal, spki, template):
        if not record.transaction_id.startswith(key + "."):
            continue
        recorded, generation = _parse(record.transaction_id[len(key) + 1 :])
        if recorded is None:
            recorded = _stored_fingerprint(record)
        if recorded == content:
            same.append((generation, record))
        elif record.state in _WAITING:
            waiting.append(record)
    if same:
        generation, newest = max(same, key=lambda item: item[0])
        if await _open(newest, state, retry_window, now):
            return Transaction(newest.transaction_id, retry=True, request_id=newest.id)
        generation += 1
    else:
        generation = 0
    if waiting:
        raise Conflict(
            f"request {waiting[0].id} for this key is still waiting for "
            f"{_waiting_for(waiting[0])}; send that same CSR again to learn its outcome "
            "(RFC 7030 §4.2.3). A different CSR for this key is judged once it is decided"
        )
    return Transaction(f"{key}.{content}.{generation}", retry=False)


#: Request states in which a transaction is still undecided.
_WAITING = (RequestState.RECEIVED, RequestState.PENDING)
#: Hex digits of the request fingerprint kept in the transaction id (128 bits).
_CONTENT_CHARS = 32


async def _open(newest: RequestRecord, state: EstState, retry_window: int, now: datetime) -> bool:
    """True while a repeat of ``newest`` is a retry: undecided, decided but not yet picked up,
    or answered less than ``retry_window`` seconds ago."""
    if newest.state in _WAITING:
        return True
    delivery = await state.delivery(newest.transaction_id)
    if delivery is None:
        # Answered at once: the answer left with the response that decided it.
        answered_at: datetime | None = newest.updated_at
    else:
        answered_at = delivery.delivered_at  # None: approved/decided, not yet picked up
    return answered_at is None or now - answered_at < timedelta(seconds=retry_window)


def _waiting_for(record: RequestRecord) -> str:
    if record.pending_reason is PendingReason.APPROVAL:
        return "certificate manager approval"
    return "the CA"


def _parse(tail: str) -> tuple[str | None, int]:
    """(request fingerprint, generation) from what follows the key in a transaction id; ids
    written before the fingerprint was part of them (``key.generation``) have none."""
    content, _, generation = tail.rpartition(".")
    try:
        return (content or None), int(generation)
    except ValueError:
        return (content or None), 0


def _stored_fingerprint(record: RequestRecord) -> str | None:
    """The request fingerprint of an id without one, from the CSR stored with the request
    (requests received before this version); None if that CSR is not usable."""
    try:
        return request_digest(record.csr_der)[:_CONTENT_CHARS]
    except BadCSR:
        return None
