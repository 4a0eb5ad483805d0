"""EnrollmentService through the production wiring: idempotency, pending, poller, failure modes.

Connector failure modes use a fake that wraps the real local CA (allowed for failure modes);
every success path signs with the real local CA.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509

from gateway.config import load_config
from gateway.errors import CAUnavailable, Conflict, ConnectorError, UnknownTemplate
from gateway.model import (
    ConnectorOutcome,
    ConnectorPending,
    Denied,
    EnrollmentRequest,
    IssuancePlan,
    Issued,
    Pending,
    PendingReason,
    RequestKind,
    RequestState,
    RevocationReason,
)
from gateway.ports import CAConnector
from gateway.server.wiring import Components, build
from gateway.service import EnrollmentService, local_requester
from tests.helpers import make_csr, write_config


@pytest.fixture
async def components(tmp_path: Path) -> AsyncIterator[Components]:
    c = await build(load_config(write_config(tmp_path)))
    yield c
    await c.close()


def request(
    txn: str,
    *,
    template: str = "tls-server",
    key: object | None = None,
    dns: tuple[str, ...] = ("www.example.test",),
) -> EnrollmentRequest:
    return EnrollmentRequest(
        csr=make_csr(key, dns=dns),
        template=template,
        requester=local_requester("alice"),
        transaction_id=txn,
    )


class FlakyCA:
    """Wraps the real local CA and injects one connector failure mode."""

    def __init__(self, inner: CAConnector, mode: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.mode = mode
        self.submits = 0
        self.polls = 0

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    async def submit(self, plan: IssuancePlan) -> ConnectorOutcome:
        self.submits += 1
        if self.mode == "unavailable-once" and self.submits == 1:
            raise CAUnavailable("CA maintenance", retry_after=1)
        if self.mode == "pending":
            self.plan = plan
            return ConnectorPending(ca_request_id="ca-42", retry_after=1)
        if self.mode == "deny":
            return Denied("ca-denied", "CERTSRV_E_TEMPLATE_DENIED", "ca")
        if self.mode == "broken":
            raise ConnectorError("CA speaks nonsense")
        return await self.inner.submit(plan)

    async def poll(self, ca_request_id: str) -> ConnectorOutcome:
        self.polls += 1
        assert ca_request_id == "ca-42"
        if self.polls < 2:
            return ConnectorPending(ca_request_id, 1)
        return await self.inner.submit(self.plan)

    async def revoke(self, serial: int, reason: RevocationReason, when: datetime) -> None:
        await self.inner.revoke(serial, reason, when)

    async def ca_chain(self) -> tuple[x509.Certificate, ...]:
        return await self.inner.ca_chain()

    async def check(self) -> None:
        await self.inner.check()


def with_connector(c: Components, mode: str) -> tuple[EnrollmentService, FlakyCA]:
    flaky = FlakyCA(c.connectors["local"], mode)
    return EnrollmentService(c.store, c.policy, {"local": flaky}), flaky


async def test_same_transaction_twice_issues_once(components: Components) -> None:
    req = request("txn-1")
    first = await components.service.enroll(req)
    second = await components.service.enroll(req)
    assert isinstance(first, Issued) and isinstance(second, Issued)
    assert first.certificate.serial_number == second.certificate.serial_number
    assert len(await components.store.list_certificates()) == 1


async def test_concurrent_duplicates_issue_once(components: Components) -> None:
    req = request("txn-race")
    outcomes = await asyncio.gather(*(components.service.enroll(req) for _ in range(5)))
    serials = {o.certificate.serial_number for o in outcomes if isinstance(o, Issued)}
    assert len(serials) == 1
    assert len(await components.store.list_certificates()) == 1


async def test_transaction_reused_with_another_key_is_a_conflict(components: Components) -> None:
    await components.service.enroll(request("txn-2"))
    with pytest.raises(Conflict):
        await components.service.enroll(request("txn-2"))  # fresh key


async def test_unknown_template_is_refused_before_anything_is_stored(
    components: Components,
) -> None:
    with pytest.raises(UnknownTemplate):
        await components.service.enroll(request("txn-3", template="nope"))
    assert await components.store.list_requests() == []


async def test_policy_denial_is_recorded_with_its_rule(components: Components) -> None:
    outcome = await components.service.enroll(request("txn-4", template="device", dns=()))
    # device requires a CN; make_csr without cn gives an empty subject
    assert isinstance(outcome, Denied) and outcome.rule
    stored = await components.store.find_request("cli", "txn-4")
    assert stored is not None and stored.state is RequestState.DENIED
    assert stored.denial_rule == outcome.rule
    assert await components.store.list_certificates() == []


async def test_ca_unavailable_goes_pending_and_the_poller_completes_it(
    components: Components,
) -> None:
    service, flaky = with_connector(components, "unavailable-once")
    outcome = await service.enroll(request("txn-5"))
    assert isinstance(outcome, Pending) and outcome.reason is PendingReason.CA
    await asyncio.sleep(1.1)
    assert await service.poll_pending_once(lease_seconds=30) == 1
    final = await service.poll(outcome.request_id)
    assert isinstance(final, Issued)
    assert flaky.submits == 2
    assert len(await components.store.list_certificates()) == 1


async def test_ca_pending_is_polled_by_request_id_until_issued(components: Components) -> None:
    service, flaky = with_connector(components, "pending")
    outcome = await service.enroll(request("txn-6"))
    assert isinstance(outcome, Pending) and outcome.reason is PendingReason.CA
    stored = await components.store.get_request(outcome.request_id)
    assert stored is not None and stored.ca_request_id == "ca-42"
    for _ in range(3):
        await asyncio.sleep(1.1)
        await service.poll_pending_once(lease_seconds=1)
    assert isinstance(await service.poll(outcome.request_id), Issued)
    assert flaky.polls == 2


async def test_ca_denial_is_recorded_as_denied(components: Components) -> None:
    service, _ = with_connector(components, "deny")
    outcome = await service.enroll(request("txn-7"))
    assert isinstance(outcome, Denied) and outcome.code == "ca-denied"
    stored = await components.store.find_request("cli", "txn-7")
    assert stored is not None and stored.state is RequestState.DENIED
    assert stored.denial_rule == "ca"


async def test_permanent_connector_error_marks_the_request_failed(
    components: Components,
) -> None:
    service, _ = with_connector(components, "broken")
    with pytest.raises(ConnectorError):
        await service.enroll(request("txn-8"))
    stored = await components.store.find_request("cli", "txn-8")
    assert stored is not None and stored.state is RequestState.FAILED


async def test_renewal_supersedes_the_prior_certificate(components: Components) -> None:
    first = await components.service.enroll(request("txn-9"))
    assert isinstance(first, Issued)
    renewal = dataclasses.replace(
        request("txn-10"), prior_certificate=first.certificate, kind=RequestKind.REENROLLMENT
    )
    second = await components.service.enroll(renewal)
    assert isinstance(second, Issued)
    old = await components.store.get_certificate(format(first.certificate.serial_number, "x"))
    assert old is not None and old.superseded_by == format(second.certificate.serial_number, "x")


async def test_every_issuance_is_an_audit_event(components: Components) -> None:
    outcome = await components.service.enroll(request("txn-11"))
    assert isinstance(outcome, Issued)
    events = [e.event for e in await components.store.audit_events()]
    assert "certificate.issued" in events and "request.received" in events


async def test_the_issued_log_line_from_the_inventory_equals_the_one_from_the_certificate(
    components: Components, caplog: pytest.LogCaptureFixture
) -> None:
    # InProcess.issue hands events.settled the inventory record (its subject and serial text);
    # the plain path decodes them from the certificate again
    from gateway.observability import events
    from gateway.observability.logs import FIELDS_ATTR

    caplog.set_level("INFO", logger="certgate.enrollment")
    outcome = await components.service.enroll(request("log-1", dns=("log.example.test",)))
    assert isinstance(outcome, Issued)
    (line,) = [r for r in caplog.records if r.getMessage() == "certificate issued"]
    stored = await components.store.find_request("cli", "log-1")
    assert stored is not None
    _, _, plain = events._decision(stored, outcome)
    logged = getattr(line, FIELDS_ATTR)
    assert {k: logged[k] for k in plain} == plain
