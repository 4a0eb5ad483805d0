"""A certificate manager's actions on requests awaiting approval: approve, deny, withdraw."""

from __future__ import annotations

from gateway.errors import Conflict, ErrorCode, NotFound
from gateway.model import (
    Denied,
    Outcome,
    PendingReason,
    RequestRecord,
    RequestState,
)
from gateway.observability import events
from gateway.service.core import ServiceCore
from gateway.service.enrollment import Enrollment


class Approvals:
    def __init__(self, core: ServiceCore, enrollment: Enrollment) -> None:
        self._core = core
        self._enrollment = enrollment

    async def approve(self, request_id: str, actor: str) -> Outcome:
        """Grant a pending-approval request: re-plan it (policy may have changed) and submit."""
        stored = await self._awaiting_approval(request_id)
        await self._core.store.audit("request.approved", actor, request_id=request_id)
        return await self._enrollment.decide(
            stored, await self._enrollment.rebuild(stored), approved=True
        )

    async def deny(self, request_id: str, actor: str, reason: str) -> Outcome:
        """Refuse a pending-approval request."""
        stored = await self._awaiting_approval(request_id)
        detail = f"denied by a certificate manager ({actor})" + (f": {reason}" if reason else "")
        await self._core.store.set_denied(
            request_id, ErrorCode.POLICY_DENIED.value, detail, "manager"
        )
        return events.settled(stored, Denied(ErrorCode.POLICY_DENIED.value, detail, "manager"))

    async def withdraw(self, request_id: str, actor: str, superseded_by: str) -> Outcome:
        """The requester gave up on a request awaiting approval and asked again
        (``superseded_by`` names the newer request): it leaves the approval queue, recorded as
        denied with rule ``withdrawn`` and audited as ``request.withdrawn`` by ``actor``.
        ``Conflict`` unless it is still awaiting approval: an approved, issued or denied
        request, or one waiting for the CA, is never touched."""
        await self._awaiting_approval(request_id)
        detail = f"withdrawn by the requester ({actor}): superseded by {superseded_by}"
        store = self._core.store
        await store.set_denied(request_id, ErrorCode.CONFLICT.value, detail, "withdrawn")
        await store.audit(
            "request.withdrawn",
            actor,
            request_id=request_id,
            detail={"superseded_by": superseded_by},
        )
        return Denied(ErrorCode.CONFLICT.value, detail, "withdrawn")

    async def _awaiting_approval(self, request_id: str) -> RequestRecord:
        """The stored request; ``NotFound``, or ``Conflict`` unless it awaits approval."""
        stored = await self._core.store.get_request(request_id)
        if stored is None:
            raise NotFound(f"no request {request_id}")
        if not (
            stored.state is RequestState.PENDING and stored.pending_reason is PendingReason.APPROVAL
        ):
            raise Conflict(f"request {request_id} is {stored.state.value}, not awaiting approval")
        return stored
