"""Issuance strategies: how one judged request and its outcome reach the store.

The enrollment path (:mod:`gateway.service.enrollment`) is one: record (if the strategy
records first), plan, then deny, park for approval or issue through the strategy.

* :class:`RecordedFirst` -- a CA with its own state (AD CS), and every request already stored
  (approved, resubmitted by the poller): the request is recorded ``received`` *before* the CA
  sees it, so a crash always leaves a visible, recoverable record; outcomes update that row.
  A transaction found still ``received`` is resubmitted, and connectors are idempotent per
  request id, so the certificate already signed is returned.
* :class:`InProcess` -- a CA that signs inside this process (:class:`gateway.ports.
  InProcessSigner`, the local CA): nothing is stored before judging; the request is stored
  together with its outcome (denied, or issued with its certificate and audit) in one
  transaction. A crash before the commit loses only an unseen signature.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Protocol

from gateway.errors import CAUnavailable, ConnectorError, ErrorCode
from gateway.model import (
    ConnectorOutcome,
    ConnectorPending,
    Denied,
    EnrollmentRequest,
    IssuancePlan,
    Issued,
    Outcome,
    Pending,
    PendingReason,
    RequestRecord,
    RequestState,
    serial_hex,
)
from gateway.observability import events
from gateway.ports import InProcessSigner
from gateway.service.core import APPROVAL_RETRY_AFTER, ServiceCore
from gateway.service.records import Inventory


class TransactionTaken(Exception):
    """The store already holds this transaction key (a repeat, another attempt, or a lost
    race): ``stored`` is its row; the enrollment path decides what that means."""

    def __init__(self, stored: RequestRecord) -> None:
        super().__init__(stored.transaction_id)
        self.stored = stored


class Issuance(Protocol):
    """Where a judged request's outcome is written (see the module docstring)."""

    #: the request is stored ``received`` before it is judged
    records_first: bool

    async def deny(
        self, record: RequestRecord, request: EnrollmentRequest, denied: Denied
    ) -> Outcome:
        """Record ``denied`` as the request's outcome."""
        ...

    async def park(self, record: RequestRecord, request: EnrollmentRequest) -> Outcome:
        """Record the request as pending a certificate manager's approval."""
        ...

    async def issue(
        self, record: RequestRecord, request: EnrollmentRequest, plan: IssuancePlan
    ) -> Outcome:
        """Have the CA act on ``plan`` and record what it answered."""
        ...


class RecordedFirst:
    """``record`` is already stored: each outcome is a transition of that row."""

    records_first = True

    def __init__(self, core: ServiceCore, inventory: Inventory) -> None:
        self._core = core
        self._inventory = inventory

    async def deny(
        self, record: RequestRecord, request: EnrollmentRequest, denied: Denied
    ) -> Outcome:
        await self._core.store.set_denied(record.id, denied.code, denied.detail, denied.rule)
        return events.settled(record, denied)

    async def park(self, record: RequestRecord, request: EnrollmentRequest) -> Outcome:
        await self._core.store.set_pending(record.id, PendingReason.APPROVAL)
        return events.settled(
            record, Pending(record.id, APPROVAL_RETRY_AFTER, PendingReason.APPROVAL)
        )

    async def issue(
        self, record: RequestRecord, request: EnrollmentRequest, plan: IssuancePlan
    ) -> Outcome:
        connector = self._core.connector(plan.connector)
        try:
            with events.connector_call(plan.connector, "submit") as call:
                result = await connector.submit(plan)
                call.outcome(result)
        except CAUnavailable as exc:
            await self._core.store.set_pending(
                record.id,
                PendingReason.CA,
                connector=plan.connector,
                next_poll_at=self._core.clock.now() + timedelta(seconds=exc.retry_after),
            )
            return events.settled(record, Pending(record.id, exc.retry_after, PendingReason.CA))
        except ConnectorError as exc:
            await self._core.store.set_failed(record.id, exc.detail)
            events.failed(record, exc.detail)
            raise
        return await self.record(record, plan.connector, result, plan.template_major)

    async def record(
        self,
        stored: RequestRecord,
        connector: str,
        result: ConnectorOutcome,
        template_major: int | None = None,
    ) -> Outcome:
        """Store what the CA answered (a submit, or a poll of a CA-pending request)."""
        store = self._core.store
        if isinstance(result, Issued):
            cert_record = self._inventory.record(stored, result, template_major)
            await store.record_issued(stored.id, cert_record, supersedes=stored.prior_serial)
            return events.settled(stored, result)
        if isinstance(result, ConnectorPending):
            await store.set_pending(
                stored.id,
                PendingReason.CA,
                connector=connector,
                ca_request_id=result.ca_request_id,
                next_poll_at=self._core.clock.now() + timedelta(seconds=result.retry_after),
            )
            return events.settled(stored, Pending(stored.id, result.retry_after, PendingReason.CA))
        await store.set_denied(stored.id, ErrorCode.CA_DENIED.value, result.detail, "ca")
        return events.settled(stored, Denied(ErrorCode.CA_DENIED.value, result.detail, "ca"))


class InProcess:
    """``record`` is not stored yet: it is stored with its outcome in one transaction.

    There is no lookup of the transaction first: the store's unique transaction key decides.
    A repeated transaction is judged and signed again in memory, that certificate is discarded
    unseen when the store refuses the duplicate, and the client gets the recorded outcome
    -- a wasted signature on a retry instead of an extra query on every new
    enrollment. Each such duplicate raises :class:`TransactionTaken`."""

    records_first = False

    def __init__(self, core: ServiceCore, inventory: Inventory, signer: InProcessSigner) -> None:
        self._core = core
        self._inventory = inventory
        self._signer = signer

    async def deny(
        self, record: RequestRecord, request: EnrollmentRequest, denied: Denied
    ) -> Outcome:
        stored, created = await self._core.store.create_denied(
            dataclasses.replace(
                record,
                connector=None,
                state=RequestState.DENIED,
                denial_code=denied.code,
                denial_rule=denied.rule,
                denial_detail=denied.detail,
            )
        )
        if not created:
            raise TransactionTaken(stored)
        return events.settled(stored, denied)

    async def park(self, record: RequestRecord, request: EnrollmentRequest) -> Outcome:
        stored, created = await self._core.store.create_request(record)
        if not created:
            raise TransactionTaken(stored)
        await self._core.store.set_pending(stored.id, PendingReason.APPROVAL)
        return events.settled(
            stored, Pending(stored.id, APPROVAL_RETRY_AFTER, PendingReason.APPROVAL)
        )

    async def issue(
        self, record: RequestRecord, request: EnrollmentRequest, plan: IssuancePlan
    ) -> Outcome:
        with events.connector_call(plan.connector, "submit") as call:
            result = self._signer.sign(plan)
            call.outcome(result)
        if isinstance(result, Denied):
            denied = Denied(ErrorCode.CA_DENIED.value, result.detail, "ca")
            return await self.deny(record, request, denied)
        issued = dataclasses.replace(
            record,
            state=RequestState.ISSUED,
            certificate_serial=serial_hex(result.certificate.serial_number),
            connector=plan.connector,
        )
        cert_record = self._inventory.record(issued, result, plan.template_major, plan)
        stored, created = await self._core.store.create_issued(
            issued, cert_record, issued.prior_serial
        )
        if not created:
            # A concurrent duplicate of this transaction was stored first: ours is discarded
            # unseen and the client gets the recorded outcome, never a second certificate.
            raise TransactionTaken(stored)
        return events.settled(issued, result, cert_record)
