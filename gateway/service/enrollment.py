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
found still ``received`` (a crash between submit and record) is resubmitted; a different
request under the same transaction id is judged afresh as its next attempt
(:mod:`gateway.service.retries`).
"""

from __future__ import annotations

import dataclasses

from cryptography import x509

from gateway.errors import BadRequest, ErrorCode, PolicyDenied
from gateway.model import (
    Denied,
    EnrollmentRequest,
    Outcome,
    RequestRecord,
    RequestState,
    new_request_id,
)
from gateway.pkix import load_csr
from gateway.pkix.csr import csr_der, csr_spki_sha256
from gateway.policy import PolicyDecision
from gateway.ports import InProcessSigner
from gateway.service import retries
from gateway.service.core import ServiceCore
from gateway.service.issuance import InProcess, Issuance, RecordedFirst, TransactionTaken
from gateway.service.records import Inventory, request_record


def _is_attempt_of(key: str, transaction_id: str) -> bool:
    """True if ``key`` stores one of the attempts of ``transaction_id``."""
    return key in retries.attempt_keys(transaction_id)


class Enrollment:
    """``enroll`` and the judging step that approvals and the poller reuse."""

    def __init__(self, core: ServiceCore) -> None:
        self._core = core
        self.inventory = Inventory(core.policy)
        #: the strategy for every request that is already stored
        self.recorded = RecordedFirst(core, self.inventory)
        self._strategies: dict[str, Issuance] = {}

    async def enroll(self, request: EnrollmentRequest, attempt: str | None = None) -> Outcome:
        """Judge and (if allowed) issue one request; a repeat of a transaction gets its
        recorded outcome (see :mod:`gateway.service.retries`).

        ``attempt``: the key of the transaction's next attempt, from a front-end that read its
        attempts already (EST's transaction lookup, SCEP's :meth:`repeat_of`); the request is
        stored there first. Otherwise it goes to attempt 1, and a taken key to :meth:`_again`,
        which reads the attempts: for a key that keeps enrolling, that was a judged and signed
        request thrown away at the collision, and a second read of the attempts. A taken hint
        goes to :meth:`_again` just the same (another request took it meanwhile)."""
        template = self._core.policy.template(request.template)  # UnknownTemplate first
        transaction = request.transaction_id
        if not transaction:
            raise BadRequest("a transaction id is required")
        if attempt is not None and not _is_attempt_of(attempt, transaction):
            raise ValueError(f"{attempt!r} is not an attempt of transaction {transaction!r}")
        return await self._attempt(request, template.connector, attempt or transaction)

    async def _attempt(self, request: EnrollmentRequest, connector: str, key: str) -> Outcome:
        """Store and judge ``request`` as the attempt stored under ``key``. No lookup first:
        the store's unique key decides, and a taken key goes to :meth:`_again`."""
        record = request_record(
            new_request_id(), self._core.clock.now(), request, connector=connector
        )
        if key != record.transaction_id:
            record = dataclasses.replace(record, transaction_id=key)
        strategy = self._strategy(connector)
        try:
            if strategy.records_first:
                stored, created = await self._core.store.create_request(record)
                if not created:
                    raise TransactionTaken(stored)
                record = stored
            return await self._judge(record, request, strategy, approved=False)
        except TransactionTaken as taken:
            return await self._again(taken.stored, request, connector)

    async def _again(
        self, stored: RequestRecord, request: EnrollmentRequest, connector: str
    ) -> Outcome:
        """``request``'s transaction key is taken by ``stored``: a repeat of it or of an
        earlier attempt gets that attempt's outcome; a different request the next attempt."""
        transaction = request.transaction_id
        retries.check_key(stored, request.spki_sha256, transaction)
        digest = retries.request_digest(request.csr_der)
        if retries.same_request(stored, digest):
            return await self.resume(stored, request)
        store, protocol = self._core.store, request.requester.protocol
        tried = await retries.attempts(store, protocol, transaction)
        match = retries.repeated(tried, digest)
        if match is not None:
            return await self.resume(await retries.record_of(store, protocol, match), request)
        return await self._attempt(request, connector, retries.next_attempt(tried, transaction))

    async def repeat_of(
        self, protocol: str, transaction_id: str, csr: x509.CertificateSigningRequest
    ) -> Outcome | retries.NextAttempt | None:
        """The outcome of the attempt of a transaction that made the same request as ``csr``
        (resubmitted if still ``received``); None if the transaction is new; the key of its
        next attempt if ``csr`` would be judged afresh (pass it to :meth:`enroll`). ``Conflict``
        if the transaction belongs to another key or has a different request waiting;
        ``retries.AttemptsUsedUp`` if it has no attempts left. Protocols that authenticate each
        message ask this before authenticating a retry (a one-time challenge is spent by
        then)."""
        store = self._core.store
        tried = await retries.attempts(store, protocol, transaction_id)
        if not tried:
            return None
        retries.check_key(tried[0], csr_spki_sha256(csr), transaction_id)
        match = retries.repeated(tried, retries.request_digest(csr_der(csr)))
        if match is not None:
            stored = await retries.record_of(store, protocol, match)
            return await self.resume(stored, await self.rebuild(stored))
        # refuses while one is waiting
        return retries.NextAttempt(retries.next_attempt(tried, transaction_id))

    async def decide(
        self, stored: RequestRecord, request: EnrollmentRequest, *, approved: bool
    ) -> Outcome:
        """Judge a request already stored (approved, or resubmitted after a crash)."""
        return await self._judge(stored, request, self.recorded, approved=approved)

    async def resume(self, stored: RequestRecord, request: EnrollmentRequest) -> Outcome:
        """Answer a repeat of ``stored``: its recorded outcome, or (still ``received``: a
        crash between recording and the outcome, or a concurrent duplicate) submit it again;
        the connector returns what it already issued for this request id."""
        if stored.state is RequestState.RECEIVED:
            return await self.decide(stored, request, approved=False)
        return await self._core.outcome_of(stored)

    async def rebuild(self, stored: RequestRecord) -> EnrollmentRequest:
        """The :class:`EnrollmentRequest` a stored request was made from (to judge it again)."""
        prior = None
        if stored.prior_serial:
            prior_record = await self._core.store.get_certificate(stored.prior_serial)
            prior = prior_record.certificate if prior_record else None
        return EnrollmentRequest(
            csr=load_csr(stored.csr_der),
            template=stored.template,
            requester=stored.requester,
            transaction_id=stored.transaction_id,
            kind=stored.kind,
            prior_certificate=prior,
            not_before=stored.not_before,
            not_after=stored.not_after,
        )

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
                strategy = InProcess(self._core, self.inventory, ca)
            else:
                strategy = self.recorded
            self._strategies[connector] = strategy
        return strategy
