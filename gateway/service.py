"""The enrollment service: one path from an :class:`EnrollmentRequest` to an outcome.

Order of events for a new transaction (architecture.md, "One request, end to end"):

1. record the request as ``received`` (idempotency key: protocol + transaction id) *before*
   the CA sees it, so a crash always leaves a visible, recoverable record;
2. plan it with the pure policy engine (a denial is recorded with its rule);
3. if the template needs a certificate manager, park it ``pending`` (approval);
4. otherwise submit the plan to the template's CA connector and record the outcome
   (issued + inventory + audit in one transaction, CA-pending with the CA's id, or denied).

Repeating a transaction returns the recorded outcome and never issues twice; a transaction
found still ``received`` (a crash between submit and record) is resubmitted, and connectors
are idempotent per request id, so the certificate already signed is returned.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from gateway.clock import Clock, SystemClock
from gateway.errors import (
    BadRequest,
    CAUnavailable,
    Conflict,
    ConnectorError,
    ErrorCode,
    NotFound,
    PolicyDenied,
    StoreUnavailable,
    UnknownTemplate,
)
from gateway.model import (
    CertificateRecord,
    CertificateStatus,
    ConnectorOutcome,
    ConnectorPending,
    Denied,
    EnrollmentRequest,
    IssuancePlan,
    Issued,
    Outcome,
    Pending,
    PendingReason,
    Requester,
    RequestKind,
    RequestRecord,
    RequestState,
    RevocationReason,
    new_request_id,
    serial_hex,
)
from gateway.observability import events
from gateway.pkix import load_csr, san_strings
from gateway.policy import (
    PolicyDecision,
    PolicyEngine,
    read_template_extension,
    renewal_window,
)
from gateway.ports import CAConnector, CRLCapable, InProcessSigner, Store

log = logging.getLogger("certgate.service")

#: Seconds a client is told to wait before asking again about an approval.
APPROVAL_RETRY_AFTER = 60


@dataclass(frozen=True)
class DueCertificate:
    """A certificate whose renewal window is open (``certgate certs due``, ACME ARI)."""

    record: CertificateRecord
    window_start: datetime
    window_end: datetime
    reason: str


class EnrollmentService:
    """enroll, poll, approve, deny, revoke, ca_chain, crl and the pending poller."""

    def __init__(
        self,
        store: Store,
        policy: PolicyEngine,
        connectors: Mapping[str, CAConnector],
        *,
        clock: Clock | None = None,
        faults: frozenset[str] = frozenset(),
    ) -> None:
        self.store = store
        self.policy = policy
        self.connectors = dict(connectors)
        self.clock = clock or SystemClock()
        self._faults = faults
        self._chains: dict[str, tuple[x509.Certificate, ...]] = {}
        self._issuer_names: dict[x509.Name, str] = {}  # few issuers, many certificates
        self._signers: dict[str, InProcessSigner | None] = {}
        self._issuer_not_after: dict[str, datetime | None] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Cache each connector's CA chain (issuer validity is an input to policy)."""
        for name, connector in self.connectors.items():
            self._chains[name] = await connector.ca_chain()

    def _connector(self, name: str) -> CAConnector:
        try:
            return self.connectors[name]
        except KeyError:
            raise ConnectorError(f"template routes to unknown connector {name!r}") from None

    async def ca_chain(self, connector: str | None = None) -> tuple[x509.Certificate, ...]:
        """The issuing chain (issuing CA first) of ``connector`` (default: the first one)."""
        name = connector or next(iter(self.connectors))
        if name not in self._chains:
            self._chains[name] = await self._connector(name).ca_chain()
        return self._chains[name]

    async def crl(self, connector: str | None = None) -> bytes:
        """A fresh DER CRL from the connector, built from the inventory's revocations."""
        name = connector or next(iter(self.connectors))
        conn = self._connector(name)
        if not isinstance(conn, CRLCapable):
            raise NotFound(f"connector {name!r} does not publish a CRL")
        revoked = await self.store.revoked_certificates()
        with events.connector_call(name, "crl"):
            return await conn.crl(revoked)

    # -- enroll ----------------------------------------------------------------------------

    async def enroll(self, request: EnrollmentRequest) -> Outcome:
        """Judge and (if allowed) issue one request; idempotent per (protocol, transaction)."""
        template = self.policy.template(request.template)  # UnknownTemplate first
        if not request.transaction_id:
            raise BadRequest("a transaction id is required")
        request_id = new_request_id()
        now = self.clock.now()
        signer = self._in_process_signer(template.connector)
        if signer is not None:
            return await self._enroll_atomic(request_id, now, request, signer)
        stored, created = await self.store.create_request(
            _request_record(request_id, now, request, connector=template.connector)
        )
        if not created:
            return await self._resume(stored, request)
        return await self._decide(stored, request, approved=False)

    async def _enroll_atomic(
        self, request_id: str, now: datetime, request: EnrollmentRequest, signer: InProcessSigner
    ) -> Outcome:
        """The in-process CA path: judge, sign in memory, then store request + certificate +
        audit in one transaction (see :class:`gateway.ports.InProcessSigner`).

        There is no lookup of the transaction first: the store's unique (protocol,
        transaction) key decides. A repeated transaction is judged and signed again in memory,
        that certificate is discarded unseen when the store refuses the duplicate, and the
        client gets the recorded outcome -- a wasted signature on a retry instead of an extra
        query on every new enrollment."""
        try:
            decision = await self._plan(request, request_id, approved=False)
        except PolicyDenied as denial:
            return await self._store_denied(
                _request_record(request_id, now, request),
                request,
                Denied(ErrorCode.POLICY_DENIED.value, denial.reason, denial.rule),
            )
        if decision.needs_approval:
            stored, created = await self.store.create_request(
                _request_record(request_id, now, request, connector=decision.plan.connector)
            )
            if not created:
                return await self._resume(stored, request)
            await self.store.set_pending(stored.id, PendingReason.APPROVAL)
            return events.settled(
                stored, Pending(stored.id, APPROVAL_RETRY_AFTER, PendingReason.APPROVAL)
            )
        with events.connector_call(decision.plan.connector, "submit") as call:
            result = signer.sign(decision.plan)
            call.outcome(result)
        if isinstance(result, Denied):
            return await self._store_denied(
                _request_record(request_id, now, request),
                request,
                Denied(ErrorCode.CA_DENIED.value, result.detail, "ca"),
            )
        if "crash_after_ca_submit" in self._faults:
            os._exit(70)  # [testing]: die after signing, before anything is stored
        serial = serial_hex(result.certificate.serial_number)
        issued = _request_record(
            request_id, now, request, RequestState.ISSUED, serial, decision.plan.connector
        )
        cert_record = self._inventory_record(
            issued, result, decision.plan.template_major, decision.plan
        )
        stored, created = await self.store.create_issued(issued, cert_record, issued.prior_serial)
        if not created:
            # A concurrent duplicate of this transaction was stored first: ours is discarded
            # unseen and the client gets the recorded outcome, never a second certificate.
            return await self._resume(stored, request)
        return events.settled(issued, result)

    async def _plan(
        self, request: EnrollmentRequest, request_id: str, *, approved: bool
    ) -> PolicyDecision:
        """Policy's plan for ``request``, with validity clipped to the issuing CA's."""
        connector = self.policy.template(request.template).connector
        if connector in self._issuer_not_after:
            issuer_not_after = self._issuer_not_after[connector]
        else:
            chain = await self.ca_chain(connector)
            issuer_not_after = chain[0].not_valid_after_utc if chain else None
            self._issuer_not_after[connector] = issuer_not_after
        return self.policy.plan(
            request,
            request_id=request_id,
            now=self.clock.now(),
            issuer_not_after=issuer_not_after,
            approved=approved,
        )

    async def _store_denied(
        self, record: RequestRecord, request: EnrollmentRequest, denied: Denied
    ) -> Outcome:
        stored, created = await self.store.create_denied(
            dataclasses.replace(
                record,
                state=RequestState.DENIED,
                denial_code=denied.code,
                denial_rule=denied.rule,
                denial_detail=denied.detail,
            )
        )
        if not created:
            return await self._resume(stored, request)
        return events.settled(stored, denied)

    async def _resume(self, stored: RequestRecord, request: EnrollmentRequest) -> Outcome:
        if stored.spki_sha256 != request.spki_sha256:
            raise Conflict(
                f"transaction {request.transaction_id!r} was already used with a different key"
            )
        if stored.state is RequestState.RECEIVED:
            # A crash between "recorded" and "outcome stored", or a concurrent duplicate:
            # submit again; the connector returns what it already issued for this request id.
            return await self._decide(stored, request, approved=False)
        return await self.outcome_of(stored)

    async def _decide(
        self, stored: RequestRecord, request: EnrollmentRequest, *, approved: bool
    ) -> Outcome:
        try:
            decision = await self._plan(request, stored.id, approved=approved)
        except PolicyDenied as denial:
            await self.store.set_denied(
                stored.id, ErrorCode.POLICY_DENIED.value, denial.reason, denial.rule
            )
            denied = Denied(ErrorCode.POLICY_DENIED.value, denial.reason, denial.rule)
            return events.settled(stored, denied)
        if decision.needs_approval:
            await self.store.set_pending(stored.id, PendingReason.APPROVAL)
            return events.settled(
                stored, Pending(stored.id, APPROVAL_RETRY_AFTER, PendingReason.APPROVAL)
            )
        return await self._submit(stored, decision.plan)

    async def _submit(self, stored: RequestRecord, plan: IssuancePlan) -> Outcome:
        connector = self._connector(plan.connector)
        try:
            with events.connector_call(plan.connector, "submit") as call:
                result = await connector.submit(plan)
                call.outcome(result)
        except CAUnavailable as exc:
            await self.store.set_pending(
                stored.id,
                PendingReason.CA,
                connector=plan.connector,
                next_poll_at=self.clock.now() + timedelta(seconds=exc.retry_after),
            )
            return events.settled(stored, Pending(stored.id, exc.retry_after, PendingReason.CA))
        except ConnectorError as exc:
            await self.store.set_failed(stored.id, exc.detail)
            events.failed(stored, exc.detail)
            raise
        if "crash_after_ca_submit" in self._faults:
            # [testing] fault injection: die after the CA acted, before the outcome is stored.
            os._exit(70)
        return await self._record(stored, plan.connector, result, plan.template_major)

    async def _record(
        self,
        stored: RequestRecord,
        connector: str,
        result: ConnectorOutcome,
        template_major: int | None = None,
    ) -> Outcome:
        if isinstance(result, Issued):
            cert_record = self._inventory_record(stored, result, template_major)
            await self.store.record_issued(stored.id, cert_record, supersedes=stored.prior_serial)
            return events.settled(stored, result)
        if isinstance(result, ConnectorPending):
            await self.store.set_pending(
                stored.id,
                PendingReason.CA,
                connector=connector,
                ca_request_id=result.ca_request_id,
                next_poll_at=self.clock.now() + timedelta(seconds=result.retry_after),
            )
            return events.settled(stored, Pending(stored.id, result.retry_after, PendingReason.CA))
        await self.store.set_denied(stored.id, ErrorCode.CA_DENIED.value, result.detail, "ca")
        return events.settled(stored, Denied(ErrorCode.CA_DENIED.value, result.detail, "ca"))

    def _inventory_record(
        self,
        stored: RequestRecord,
        issued: Issued,
        template_major: int | None,
        signed_plan: IssuancePlan | None = None,
    ) -> CertificateRecord:
        """The inventory row for ``issued.certificate``. ``signed_plan`` is the plan an
        in-process CA signed as is (subject and SANs unchanged) with the first certificate of
        ``issued.chain``: its parsed names are used instead of decoding them again from the
        certificate."""
        certificate = issued.certificate
        if template_major is None:  # a certificate from a CA poll: read what the CA wrote
            ext = read_template_extension(certificate)
            template_major = (
                ext.major if ext else self.policy.template(stored.template).major_version
            )
        if signed_plan is not None:
            subject = signed_plan.subject.rfc4514_string()
            sans = san_strings(_plan_sans(signed_plan))
            issuer = issued.chain[0].subject if issued.chain else certificate.issuer
        else:
            subject = certificate.subject.rfc4514_string()
            sans = san_strings(certificate)
            issuer = certificate.issuer
        return CertificateRecord(
            serial=serial_hex(certificate.serial_number),
            request_id=stored.id,
            subject=subject,
            sans=sans,
            template=stored.template,
            template_major=template_major,
            requester=stored.requester.principal,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            status=CertificateStatus.VALID,
            der=issued.der,
            # the CA certifies the CSR's key, whose fingerprint the request record holds
            spki_sha256=stored.spki_sha256,
            issuer=self._issuer_name(issuer),
        )

    def _in_process_signer(self, name: str) -> InProcessSigner | None:
        # isinstance() against a runtime-checkable Protocol costs ~20 us: decide once.
        if name not in self._signers:
            connector = self._connector(name)
            ok = isinstance(connector, InProcessSigner) and connector.atomic_issuance
            self._signers[name] = connector if ok else None  # type: ignore[assignment]
        return self._signers[name]

    def _issuer_name(self, issuer: x509.Name) -> str:
        text = self._issuer_names.get(issuer)
        if text is None:
            text = self._issuer_names[issuer] = issuer.rfc4514_string()
        return text

    # -- reading outcomes ------------------------------------------------------------------

    async def outcome_of(self, stored: RequestRecord) -> Outcome:
        """The recorded outcome of a request, from the store only (protocol polls use this)."""
        if stored.state is RequestState.ISSUED and stored.certificate_serial:
            cert = await self.store.get_certificate(stored.certificate_serial)
            if cert is None:
                raise NotFound(f"certificate {stored.certificate_serial} is not in the inventory")
            template = self.policy.templates.get(stored.template)
            chain = await self.ca_chain(template.connector if template else None)
            return Issued(cert.certificate, chain)
        if stored.state is RequestState.DENIED:
            return Denied(
                stored.denial_code or ErrorCode.POLICY_DENIED.value,
                stored.denial_detail or "denied",
                stored.denial_rule,
            )
        if stored.state is RequestState.FAILED:
            return Denied(ErrorCode.CONNECTOR_ERROR.value, stored.denial_detail or "failed", "ca")
        reason = stored.pending_reason or PendingReason.CA
        retry = APPROVAL_RETRY_AFTER if reason is PendingReason.APPROVAL else 10
        return Pending(stored.id, retry, reason)

    async def poll(self, request_id: str) -> Outcome:
        """Outcome of a request by certgate request id."""
        stored = await self.store.get_request(request_id)
        if stored is None:
            raise NotFound(f"no request {request_id}")
        return await self.outcome_of(stored)

    async def find_transaction(self, protocol: str, transaction_id: str) -> Outcome | None:
        stored = await self.store.find_request(protocol, transaction_id)
        return None if stored is None else await self.outcome_of(stored)

    # -- certificate manager actions -------------------------------------------------------

    async def approve(self, request_id: str, actor: str) -> Outcome:
        """Grant a pending-approval request: re-plan it (policy may have changed) and submit."""
        stored = await self._awaiting_approval(request_id)
        await self.store.audit("request.approved", actor, request_id=request_id)
        return await self._decide(stored, await self._rebuild(stored), approved=True)

    async def _awaiting_approval(self, request_id: str) -> RequestRecord:
        """The stored request; ``NotFound``, or ``Conflict`` unless it awaits approval."""
        stored = await self.store.get_request(request_id)
        if stored is None:
            raise NotFound(f"no request {request_id}")
        if not (
            stored.state is RequestState.PENDING and stored.pending_reason is PendingReason.APPROVAL
        ):
            raise Conflict(f"request {request_id} is {stored.state.value}, not awaiting approval")
        return stored

    async def deny(self, request_id: str, actor: str, reason: str) -> Outcome:
        """Refuse a pending-approval request."""
        stored = await self._awaiting_approval(request_id)
        detail = f"denied by a certificate manager ({actor})" + (f": {reason}" if reason else "")
        await self.store.set_denied(request_id, ErrorCode.POLICY_DENIED.value, detail, "manager")
        return events.settled(stored, Denied(ErrorCode.POLICY_DENIED.value, detail, "manager"))

    async def withdraw(self, request_id: str, actor: str, superseded_by: str) -> Outcome:
        """The requester gave up on a request awaiting approval and asked again
        (``superseded_by`` names the newer request): it leaves the approval queue, recorded as
        denied with rule ``withdrawn`` and audited as ``request.withdrawn`` by ``actor``.
        ``Conflict`` unless it is still awaiting approval: an approved, issued or denied
        request, or one waiting for the CA, is never touched."""
        await self._awaiting_approval(request_id)
        detail = f"withdrawn by the requester ({actor}): superseded by {superseded_by}"
        await self.store.set_denied(request_id, ErrorCode.CONFLICT.value, detail, "withdrawn")
        await self.store.audit(
            "request.withdrawn",
            actor,
            request_id=request_id,
            detail={"superseded_by": superseded_by},
        )
        return Denied(ErrorCode.CONFLICT.value, detail, "withdrawn")

    async def _rebuild(self, stored: RequestRecord) -> EnrollmentRequest:
        prior = None
        if stored.prior_serial:
            prior_record = await self.store.get_certificate(stored.prior_serial)
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

    async def revoke(self, serial: str, reason: RevocationReason, actor: str) -> CertificateRecord:
        """Revoke at the CA and in the inventory (the CRL is generated from the inventory)."""
        record = await self.store.get_certificate(serial.lower().lstrip("0") or "0")
        if record is None:
            raise NotFound(f"no certificate with serial {serial}")
        if record.status is CertificateStatus.REVOKED:
            raise Conflict(f"certificate {serial} is already revoked")
        now = self.clock.now()
        connector = self._connector(await self._issuing_connector(record))
        with events.connector_call(connector.name, "revoke"):
            await connector.revoke(int(record.serial, 16), reason, now)
        revoked = await self.store.revoke_certificate(record.serial, reason, now)
        await self.store.audit(
            "certificate.revocation-requested",
            actor,
            serial=record.serial,
            detail={"reason": reason.name.lower()},
        )
        return revoked

    async def _issuing_connector(self, record: CertificateRecord) -> str:
        """The connector that issued ``record``: the one its request recorded; for a request
        stored before requests recorded it, the template's; a guess never (with several
        connectors, the first one is not the issuer more often than any other)."""
        request = await self.store.get_request(record.request_id) if record.request_id else None
        if request is not None and request.connector:
            return request.connector
        template = self.policy.templates.get(record.template)
        if template is not None:
            return template.connector
        if len(self.connectors) == 1:
            return next(iter(self.connectors))
        raise ConnectorError(
            f"cannot tell which connector issued certificate {record.serial}: its template "
            f"{record.template!r} is gone and its request recorded no connector"
        )

    # -- renewal ---------------------------------------------------------------------------

    def renewal_of(self, record: CertificateRecord, now: datetime | None = None) -> DueCertificate:
        """The AD CS autoenrollment renewal window of an inventory certificate: it opens at
        :func:`renewal_window`, or at once (``now``) when the template was superseded or its
        major version bumped since issuance."""
        template = self.policy.templates.get(record.template)
        if template is None:
            return DueCertificate(record, record.not_before, record.not_after, "template removed")
        start, end = renewal_window(record.not_before, record.not_after, template)
        now = now or self.clock.now()
        if self.policy.superseded_by(record.template) is not None:
            return DueCertificate(record, min(start, now), end, "template superseded")
        if record.template_major < template.major_version:
            return DueCertificate(record, min(start, now), end, "template major version bumped")
        return DueCertificate(record, start, end, "renewal window")

    async def due_certificates(self) -> list[DueCertificate]:
        """Valid, unexpired, not yet superseded certificates whose renewal window is open."""
        now = self.clock.now()
        due: list[DueCertificate] = []
        for record in await self.store.list_certificates(CertificateStatus.VALID, limit=100_000):
            if record.superseded_by or record.not_after <= now:
                continue
            if record.template not in self.policy.templates:
                continue
            window = self.renewal_of(record, now)
            if window.window_start <= now:
                due.append(window)
        return due

    # -- the pending poller ----------------------------------------------------------------

    async def poll_pending_once(self, lease_seconds: int = 60) -> int:
        """Advance CA-pending requests and recover ones a crash left ``received``."""
        claimed = await self.store.claim_due_polls(self.clock.now(), lease_seconds)
        for stored in claimed:
            try:
                await self._advance(stored)
            except Exception:  # one bad request must not stop the poller
                log.exception("poller: request %s could not be advanced", stored.id)
        return len(claimed)

    async def _advance(self, stored: RequestRecord) -> None:
        if stored.state is RequestState.RECEIVED or (
            stored.state is RequestState.PENDING and stored.ca_request_id is None
        ):
            # Recorded but never answered by the CA (crash, or CA was unavailable): resubmit.
            request = await self._rebuild(stored)
            approved = stored.state is RequestState.PENDING
            await self._decide(stored, request, approved=approved)
            return
        if stored.state is RequestState.PENDING and stored.ca_request_id:
            connector = self._connector(stored.connector or next(iter(self.connectors)))
            try:
                with events.connector_call(connector.name, "poll") as call:
                    result = await connector.poll(stored.ca_request_id)
                    call.outcome(result)
            except CAUnavailable:
                return  # the lease already pushed next_poll_at ahead
            await self._record(stored, connector.name, result)

    async def run_poller(self, stop: asyncio.Event, interval: float, lease: int) -> None:
        """Poll until ``stop`` is set (the server's background task)."""
        while not stop.is_set():
            try:
                await self.poll_pending_once(lease)
            except StoreUnavailable:
                pass  # the store logs an outage once; no traceback every interval
            except Exception:
                log.exception("poller iteration failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass


def _request_record(
    request_id: str,
    now: datetime,
    request: EnrollmentRequest,
    state: RequestState = RequestState.RECEIVED,
    certificate_serial: str | None = None,
    connector: str | None = None,
) -> RequestRecord:
    """The stored form of ``request``, received at ``now``; an in-process CA's issuance is
    recorded already issued (one transaction stores it with its certificate). ``connector``
    is recorded so that revocation reaches the CA that issued, whatever happens to the
    template later."""
    return RequestRecord(
        id=request_id,
        protocol=request.requester.protocol,
        transaction_id=request.transaction_id,
        template=request.template,
        kind=request.kind,
        requester=request.requester,
        csr_der=request.csr_der,
        spki_sha256=request.spki_sha256,
        state=state,
        created_at=now,
        updated_at=now,
        prior_serial=(
            serial_hex(request.prior_certificate.serial_number)
            if request.prior_certificate is not None
            else None
        ),
        not_before=request.not_before,
        not_after=request.not_after,
        certificate_serial=certificate_serial,
        connector=connector,
    )


def _plan_sans(plan: IssuancePlan) -> tuple[x509.GeneralName, ...]:
    for extension in plan.extensions:
        if isinstance(extension.value, x509.SubjectAlternativeName):
            return tuple(extension.value)
    return ()


def local_requester(principal: str) -> Requester:
    """The requester for ``certgate enroll`` run by an operator on the gateway host."""
    return Requester(protocol="cli", principal=principal, auth_method="local")


__all__ = [
    "DueCertificate",
    "EnrollmentService",
    "RequestKind",
    "UnknownTemplate",
    "local_requester",
]
