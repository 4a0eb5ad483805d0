"""The enrollment service's one public face: :class:`EnrollmentService`.

It composes the parts, each in its own module: enrollment (:mod:`.enrollment`, with the
issuance strategies of :mod:`.issuance`), a certificate manager's actions
(:mod:`.approvals`), renewal windows (:mod:`.renewal`) and the pending poller
(:mod:`.poller`); and it does what needs them all: reading outcomes, revocation (routed to the
connector that issued the certificate), CA chains and CRLs of the default connector.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime

from cryptography import x509

from gateway.clock import Clock, SystemClock
from gateway.errors import Conflict, ConnectorError, NotFound
from gateway.model import (
    CertificateRecord,
    CertificateStatus,
    EnrollmentRequest,
    Issued,
    Outcome,
    Pending,
    RequestRecord,
    RevocationReason,
    serial_hex,
)
from gateway.observability import events
from gateway.policy import PolicyEngine
from gateway.ports import CAConnector, CRLCapable, Store
from gateway.service import retries
from gateway.service.approvals import Approvals
from gateway.service.core import ServiceCore
from gateway.service.enrollment import Enrollment
from gateway.service.poller import Poller
from gateway.service.renewal import DueCertificate, Renewal


class EnrollmentService:
    """enroll, poll, approve, deny, revoke, ca_chain, crl and the pending poller.

    ``default_connector`` names the connector whose CA ``ca_chain()`` and ``crl()`` serve
    without an argument; it may be left out only when there is exactly one connector
    (:class:`gateway.errors.ConfigError` otherwise)."""

    def __init__(
        self,
        store: Store,
        policy: PolicyEngine,
        connectors: Mapping[str, CAConnector],
        *,
        clock: Clock | None = None,
        default_connector: str | None = None,
    ) -> None:
        self._core = ServiceCore(
            store, policy, connectors, clock or SystemClock(), default_connector
        )
        self._enrollment = Enrollment(self._core)
        self._approvals = Approvals(self._core, self._enrollment)
        self._renewal = Renewal(self._core)
        self._poller = Poller(self._core, self._enrollment)

    @property
    def store(self) -> Store:
        return self._core.store

    @property
    def policy(self) -> PolicyEngine:
        return self._core.policy

    @property
    def connectors(self) -> dict[str, CAConnector]:
        return self._core.connectors

    @property
    def clock(self) -> Clock:
        return self._core.clock

    @property
    def default_connector(self) -> str:
        return self._core.default_connector

    # -- lifecycle and the CA --------------------------------------------------------------

    async def start(self) -> None:
        """Cache each connector's CA chain (issuer validity is an input to policy)."""
        for name, connector in self._core.connectors.items():
            self._core.chains[name] = await connector.ca_chain()

    async def ca_chain(self, connector: str | None = None) -> tuple[x509.Certificate, ...]:
        """The issuing chain (issuing CA first) of ``connector`` (default: the default one)."""
        return await self._core.ca_chain(connector)

    async def crl(self, connector: str | None = None) -> bytes:
        """A fresh DER CRL from the connector, built from the inventory's revocations."""
        name = connector or self._core.default_connector
        conn = self._core.connector(name)
        if not isinstance(conn, CRLCapable):
            raise NotFound(f"connector {name!r} does not publish a CRL")
        revoked = await self._core.store.revoked_certificates()
        with events.connector_call(name, "crl"):
            return await conn.crl(revoked)

    # -- enrollment and outcomes -----------------------------------------------------------

    async def enroll(self, request: EnrollmentRequest, attempt: str | None = None) -> Outcome:
        """Judge and (if allowed) issue one request; idempotent per (protocol, transaction).
        ``attempt``: the key to store it under first, when the front-end read the
        transaction's attempts already (:meth:`Enrollment.enroll`)."""
        return await self._enrollment.enroll(request, attempt)

    async def outcome_of(self, stored: RequestRecord) -> Outcome:
        """The recorded outcome of a request, from the store only (protocol polls use this)."""
        return await self._core.outcome_of(stored)

    async def poll(self, request_id: str) -> Outcome:
        """Outcome of a request by certgate request id."""
        stored = await self._core.store.get_request(request_id)
        if stored is None:
            raise NotFound(f"no request {request_id}")
        return await self._core.outcome_of(stored)

    async def find_transaction(self, protocol: str, transaction_id: str) -> Outcome | None:
        """The recorded outcome of a transaction's newest attempt, None if it is unknown."""
        stored = await self.transaction_request(protocol, transaction_id)
        return None if stored is None else await self._core.outcome_of(stored)

    async def transaction_request(self, protocol: str, transaction_id: str) -> RequestRecord | None:
        """The stored request of a transaction's newest attempt (what a poll by the client's
        transaction id follows; :mod:`gateway.service.retries`), None if it is unknown."""
        return await retries.latest(self._core.store, protocol, transaction_id)

    async def request_id_of(self, protocol: str, transaction_id: str, outcome: Outcome) -> str:
        """The id of the request ``outcome`` (from :meth:`enroll` of that transaction) is the
        outcome of, '' if none was recorded: the pending request, the request an issued
        certificate was issued for, else the transaction's newest attempt. Under one client
        transaction id a different CSR is another attempt, so the client's id alone does not
        name it."""
        if isinstance(outcome, Pending):
            return outcome.request_id
        if isinstance(outcome, Issued):
            serial = serial_hex(outcome.certificate.serial_number)
            issued = await self._core.store.get_certificate(serial)
            if issued is not None and issued.request_id:
                return issued.request_id
        stored = await self.transaction_request(protocol, transaction_id)
        return stored.id if stored is not None else ""

    async def repeat_of(
        self, protocol: str, transaction_id: str, csr: x509.CertificateSigningRequest
    ) -> Outcome | retries.NextAttempt | None:
        """The recorded outcome if ``csr`` repeats an attempt of the transaction, None for a
        new transaction, its next attempt's key if it would be judged afresh (see
        :meth:`Enrollment.repeat_of`: ``Conflict`` for another key or while a different
        request waits)."""
        return await self._enrollment.repeat_of(protocol, transaction_id, csr)

    # -- certificate manager actions -------------------------------------------------------

    async def approve(self, request_id: str, actor: str) -> Outcome:
        """Grant a pending-approval request: re-plan it (policy may have changed) and submit."""
        return await self._approvals.approve(request_id, actor)

    async def deny(self, request_id: str, actor: str, reason: str) -> Outcome:
        """Refuse a pending-approval request."""
        return await self._approvals.deny(request_id, actor, reason)

    async def withdraw(self, request_id: str, actor: str, superseded_by: str) -> Outcome:
        """Take a request awaiting approval out of the queue (see :meth:`Approvals.withdraw`)."""
        return await self._approvals.withdraw(request_id, actor, superseded_by)

    async def revoke(self, serial: str, reason: RevocationReason, actor: str) -> CertificateRecord:
        """Revoke at the CA that issued the certificate and in the inventory (the CRL is
        generated from the inventory)."""
        store = self._core.store
        record = await store.get_certificate(serial.lower().lstrip("0") or "0")
        if record is None:
            raise NotFound(f"no certificate with serial {serial}")
        if record.status is CertificateStatus.REVOKED:
            raise Conflict(f"certificate {serial} is already revoked")
        now = self._core.clock.now()
        connector = self._core.connector(await self._issuing_connector(record))
        with events.connector_call(connector.name, "revoke"):
            await connector.revoke(int(record.serial, 16), reason, now)
        revoked = await store.revoke_certificate(record.serial, reason, now)
        await store.audit(
            "certificate.revocation-requested",
            actor,
            serial=record.serial,
            detail={"reason": reason.name.lower()},
        )
        return revoked

    async def _issuing_connector(self, record: CertificateRecord) -> str:
        """The connector that issued ``record``: the one its request recorded; for a request
        stored before requests recorded it, the template's; a guess never (with several
        connectors, the default one is not the issuer more often than any other)."""
        store = self._core.store
        request = await store.get_request(record.request_id) if record.request_id else None
        if request is not None and request.connector:
            return request.connector
        template = self._core.policy.templates.get(record.template)
        if template is not None:
            return template.connector
        if len(self._core.connectors) == 1:
            return next(iter(self._core.connectors))
        raise ConnectorError(
            f"cannot tell which connector issued certificate {record.serial}: its template "
            f"{record.template!r} is gone and its request recorded no connector"
        )

    # -- renewal ---------------------------------------------------------------------------

    def renewal_of(self, record: CertificateRecord, now: datetime | None = None) -> DueCertificate:
        """The renewal window of an inventory certificate (see :meth:`Renewal.renewal_of`)."""
        return self._renewal.renewal_of(record, now)

    async def due_certificates(self) -> list[DueCertificate]:
        """Valid, unexpired, not yet superseded certificates whose renewal window is open."""
        return await self._renewal.due_certificates()

    # -- the pending poller ----------------------------------------------------------------

    async def poll_pending_once(self, lease_seconds: int = 60) -> int:
        """Advance CA-pending requests and recover ones a crash left ``received``."""
        return await self._poller.poll_pending_once(lease_seconds)

    async def run_poller(self, stop: asyncio.Event, interval: float, lease: int) -> None:
        """Poll until ``stop`` is set (the server's background task)."""
        await self._poller.run(stop, interval, lease)
