"""EST idempotency: an EST request carries no transaction id, so certgate derives one.

RFC 7030 §4.2.3: after a 202 the client sends *the identical request* again, possibly in a new
TLS session with a regenerated CSR (new tls-unique, same key; §3.5), so CSR bytes cannot be the
key. The key is (label, template, authenticated principal, SPKI, operation, prior certificate):

    transaction_id = sha256(key) + "." + generation

The newest request with that key stays *open* while it is received or pending, and until its
final answer (certificate or refusal) has been delivered to the client, plus
``[est] retry_window`` (default 5 minutes, so a response
lost on the wire is answered again instead of issuing twice). While open, the same transaction
id is reused and the service returns the recorded outcome: a retry never issues twice. Once it
is closed, the next request with the same key gets ``generation + 1``, a new transaction: a
genuine later re-enrollment goes through policy again. Only transactions that answered 202 are
tracked in ``est_deliveries`` (a request answered at once was delivered when it was decided, its
``updated_at``), so the common path writes nothing beyond what the service stores. The id is
deterministic, so two concurrent identical first requests collide on the service's (protocol,
transaction id) uniqueness instead of issuing twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.model import RequestKind, RequestRecord, RequestState
from gateway.ports import Store
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
    store: Store,
    state: EstState,
    *,
    label: str,
    template: str,
    principal: str,
    spki: str,
    kind: RequestKind,
    prior: str | None,
    retry_window: int,
    now: datetime,
) -> Transaction:
    """The transaction a request belongs to (see the module docstring)."""
    key = transaction_key(label, template, principal, spki, kind, prior)
    candidates: list[RequestRecord] = [
        r
        for r in await store.find_requests_by_key("est", principal, spki, template)
        if r.transaction_id.startswith(key + ".")
    ]
    if not candidates:
        return Transaction(f"{key}.0", retry=False)
    newest = max(candidates, key=lambda r: _generation(r.transaction_id))
    if newest.state in (RequestState.RECEIVED, RequestState.PENDING):
        return Transaction(newest.transaction_id, retry=True, request_id=newest.id)
    delivery = await state.delivery(newest.transaction_id)
    if delivery is None:
        # Answered at once: the answer left with the response that decided it.
        answered_at: datetime | None = newest.updated_at
    else:
        answered_at = delivery.delivered_at  # None: approved/decided, not yet picked up
    if answered_at is None or now - answered_at < timedelta(seconds=retry_window):
        return Transaction(newest.transaction_id, retry=True, request_id=newest.id)
    return Transaction(f"{key}.{_generation(newest.transaction_id) + 1}", retry=False)


def _generation(transaction_id: str) -> int:
    try:
        return int(transaction_id.rsplit(".", 1)[1])
    except (IndexError, ValueError):
        return 0
