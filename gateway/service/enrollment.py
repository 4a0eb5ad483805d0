"""Enrollment: one path from an :class:`EnrollmentRequest` to an outcome.

Order of events (architecture.md, "One request, end to end"):

1. a connector that records first (:class:`gateway.service.issuance.RecordedFirst`) has the
   request stored as ``received`` (idempotency key: protocol + transaction id) *before* the
   CA sees it; an in-process CA (:class:`~gateway.service.issuance.InProcess`) stores it
   with its outcome instead;
2. plan it with the pure policy engine (a denial is recorded with its rule);
3. if the template needs a certificate manager, park it ``pending`` (approval);
4. otherwise issue through the strategy and record the outcome (issued + inventory + audit,
   CA-pending with the CA's id, or denied).

Repeating a transaction returns the recorded outcome and never issues twice; a transaction
found still ``received`` (a crash between submit and record) is resubmitted.
"""

from __future__ import annotations

from gateway.errors import BadRequest, Conflict, ErrorCode, PolicyDenied
from gateway.model import (
    Denied,
    EnrollmentRequest,
    Outcome,
    RequestRecord,
    RequestState,
    new_request_id,
)
from gateway.policy import PolicyDecision
from gateway.ports import InProcessSigner
from gateway.service.core import ServiceCore
from gateway.service.issuance import InProcess, Issuance, RecordedFirst
from gateway.service.records import Inventory, request_record


class Enrollment:
    """``enroll`` and the judging step that approvals and the poller reuse."""

    def __init__(self, core: ServiceCore) -> None:
        self._core = core
        self.inventory = Inventory(core.policy)
        #: the strategy for every request that is already stored
        self.recorded = RecordedFirst(core, self.inventory)
        self._strategies: dict[str, Issuance] = {}

    async def enroll(self, request: EnrollmentRequest) -> Outcome:
        """Judge and (if allowed) issue one request; idempotent per (protocol, transaction)."""
        template = self._core.policy.template(request.template)  # UnknownTemplate first
        if not request.transaction_id:
            raise BadRequest("a transaction id is required")
        record = request_record(
            new_request_id(), self._core.clock.now(), request, connector=template.connector
        )
        strategy = self._strategy(template.connector)
        if strategy.records_first:
            stored, created = await self._core.store.create_request(record)
            if not created:
                return await self.resume(stored, request)
            record = stored
        return await self._judge(record, request, strategy, approved=False)

    async def decide(
        self, stored: RequestRecord, request: EnrollmentRequest, *, approved: bool
    ) -> Outcome:
        """Judge a request already stored (approved, or resubmitted after a crash)."""
        return await self._judge(stored, request, self.recorded, approved=approved)

    async def resume(self, stored: RequestRecord, request: EnrollmentRequest) -> Outcome:
        """Answer a transaction the store already holds: its recorded outcome, or (still
        ``received``: a crash between recording and the outcome, or a concurrent duplicate)
        submit it again; the connector returns what it already issued for this request id."""
        if stored.spki_sha256 != request.spki_sha256:
            raise Conflict(
                f"transaction {request.transaction_id!r} was already used with a different key"
            )
        if stored.state is RequestState.RECEIVED:
            return await self.decide(stored, request, approved=False)
        return await self._core.outcome_of(stored)

    async def _judge(
        self,
        record: RequestRecord,
        request: EnrollmentRequest,
        strategy: Issuance,
        *,
        approved: bool,
    ) -> Outcome:
        try:
            decision = await self.plan(request, record.id, approved=approved)
        except PolicyDenied as denial:
            denied = Denied(ErrorCode.POLICY_DENIED.value, denial.reason, denial.rule)
            return await strategy.deny(record, request, denied)
        if decision.needs_approval:
            return await strategy.park(record, request)
        return await strategy.issue(record, request, decision.plan)

    async def plan(
        self, request: EnrollmentRequest, request_id: str, *, approved: bool
    ) -> PolicyDecision:
        """Policy's plan for ``request``, with validity clipped to the issuing CA's."""
        connector = self._core.policy.template(request.template).connector
        return self._core.policy.plan(
            request,
            request_id=request_id,
            now=self._core.clock.now(),
            issuer_not_after=await self._core.issuer_not_after(connector),
            approved=approved,
        )

    def _strategy(self, connector: str) -> Issuance:
        # isinstance() against a runtime-checkable Protocol costs ~20 us: decide once.
        strategy = self._strategies.get(connector)
        if strategy is None:
            ca = self._core.connector(connector)
            if isinstance(ca, InProcessSigner) and ca.atomic_issuance:
                strategy = InProcess(self._core, self.inventory, ca, self.resume)
            else:
                strategy = self.recorded
            self._strategies[connector] = strategy
        return strategy
