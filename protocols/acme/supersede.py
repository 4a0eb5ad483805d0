"""Retried orders replace the ones their client gave up on (issue: approval queue piles).

A client whose order waits for a certificate manager (template ``manager_approval``, RFC 8555
§7.4 ``processing``) often gives up after a while and orders again, day after day. Rule: once
a newer order of the same account, for the same template and exactly the same identifiers, is
finalized and the core answered (issued or pending), every older such order still waiting for
approval is superseded: its core request is withdrawn (:meth:`EnrollmentService.withdraw`,
audited as ``request.withdrawn`` by the account, and gone from ``certgate requests list``) and
the older order becomes ``invalid`` with an error naming its successor. Only older orders are
touched, so two finalizes racing each other never withdraw both; a request already approved,
denied or waiting for the CA itself is left as it is.
"""

from __future__ import annotations

from gateway.errors import Conflict, ErrorCode, NotFound
from gateway.model import Denied
from protocols.acme import state
from protocols.acme.base import Acme
from protocols.acme.errors import problem_for


def _names(order: state.Order) -> frozenset[tuple[str, str]]:
    return frozenset((i["type"], i["value"]) for i in order.identifiers)


async def supersede_older(
    acme: Acme, order: state.Order, older: list[state.Order] | None = None
) -> None:
    """Withdraw the approval requests of ``order``'s older twins (see the module docstring);
    ``older``: :meth:`~protocols.acme.repository.AcmeRepository.older_awaiting_core` of it
    when the caller read it already."""
    if older is None:
        older = await acme.store.read(acme.repo.older_awaiting_core, order)
    names = _names(order)
    actor = f"acme:account:{order.account_id}"
    successor = acme.url("order", order.id)
    for twin in older:
        if _names(twin) != names or twin.request_id is None:
            continue
        try:
            outcome = await acme.service.withdraw(twin.request_id, actor, successor)
        except (Conflict, NotFound):
            continue  # approved, denied or at the CA meanwhile: not for the client to withdraw
        assert isinstance(outcome, Denied)
        doc = problem_for(ErrorCode(outcome.code), outcome.detail, outcome.rule).document()
        await acme.store.write(
            acme.repo.set_order, twin.id, "processing", status="invalid", error=doc
        )
