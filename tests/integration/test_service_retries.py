"""The service's one retry mechanism (gateway.service.retries), for both issuance strategies:
a repeat of (protocol, transaction id, request digest) replays the recorded outcome; a
different CSR under the same transaction id is judged afresh, never answered with another
request's outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509

from gateway.config import load_config
from gateway.errors import Conflict
from gateway.model import (
    ConnectorOutcome,
    Denied,
    EnrollmentRequest,
    IssuancePlan,
    Issued,
    Pending,
    RevocationReason,
)
from gateway.ports import CAConnector
from gateway.server.wiring import Components, build
from gateway.service import EnrollmentService, local_requester
from gateway.service.retries import NextAttempt
from tests.helpers import make_csr, write_config
from tests.pki_helpers import ec_key


class RecordedFirstCA:
    """The real local CA without its in-process path: requests are recorded first."""

    def __init__(self, inner: CAConnector) -> None:
        self.inner = inner
        self.name = inner.name

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    async def submit(self, plan: IssuancePlan) -> ConnectorOutcome:
        return await self.inner.submit(plan)

    async def poll(self, ca_request_id: str) -> ConnectorOutcome:
        return await self.inner.poll(ca_request_id)

    async def revoke(self, serial: int, reason: RevocationReason, when: datetime) -> None:
        await self.inner.revoke(serial, reason, when)

    async def ca_chain(self) -> tuple[x509.Certificate, ...]:
        return await self.inner.ca_chain()

    async def check(self) -> None:
        await self.inner.check()


@pytest.fixture
async def components(tmp_path: Path) -> AsyncIterator[Components]:
    c = await build(load_config(write_config(tmp_path)))
    yield c
    await c.close()


@pytest.fixture(params=["in-process", "recorded-first"])
def service(request: pytest.FixtureRequest, components: Components) -> EnrollmentService:
    if request.param == "in-process":
        return components.service
    recorded = RecordedFirstCA(components.connectors["local"])
    return EnrollmentService(components.store, components.policy, {"local": recorded})


def _request(
    txn: str, csr: x509.CertificateSigningRequest, template: str = "tls-server"
) -> EnrollmentRequest:
    return EnrollmentRequest(
        csr=csr, template=template, requester=local_requester("alice"), transaction_id=txn
    )


def _serial(outcome: object) -> int:
    assert isinstance(outcome, Issued), outcome
    return outcome.certificate.serial_number


async def test_a_re_signed_repeat_replays_the_recorded_certificate(
    service: EnrollmentService,
) -> None:
    key = ec_key()
    first = await service.enroll(_request("t1", make_csr(key, dns=("a.example.test",))))
    again = await service.enroll(_request("t1", make_csr(key, dns=("a.example.test",))))
    assert _serial(first) == _serial(again)
    assert len(await service.store.list_certificates()) == 1


async def test_a_different_csr_after_an_issuance_is_judged_afresh(
    service: EnrollmentService,
) -> None:
    key = ec_key()
    first_csr = make_csr(key, dns=("a.example.test",))
    second_csr = make_csr(key, dns=("b.example.test",))
    first = await service.enroll(_request("t2", first_csr))
    second = await service.enroll(_request("t2", second_csr))
    assert _serial(first) != _serial(second)
    assert isinstance(second, Issued)
    sans = second.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.DNSName) == ["b.example.test"]
    # Each CSR keeps its own outcome; a poll by transaction id follows the newest attempt.
    assert _serial(await service.enroll(_request("t2", first_csr))) == _serial(first)
    assert _serial(await service.enroll(_request("t2", second_csr))) == _serial(second)
    assert _serial(await service.find_transaction("cli", "t2")) == _serial(second)
    stored = await service.store.find_request("cli", "t2#2")
    assert stored is not None and stored.certificate_serial == format(_serial(second), "x")
    first_stored = await service.store.find_request("cli", "t2")
    assert first_stored is not None
    assert await service.request_id_of("cli", "t2", second) == stored.id
    assert await service.request_id_of("cli", "t2", first) == first_stored.id
    assert len(await service.store.list_certificates()) == 2


async def test_a_corrected_csr_after_a_denial_is_judged_afresh(
    service: EnrollmentService,
) -> None:
    key = ec_key()
    refused = await service.enroll(_request("t3", make_csr(key, dns=()), template="device"))
    assert isinstance(refused, Denied)
    fixed = await service.enroll(_request("t3", make_csr(key, cn="dev-1"), template="device"))
    assert isinstance(fixed, Issued)
    # the refused CSR, repeated, still gets its refusal
    again = await service.enroll(_request("t3", make_csr(key, dns=()), template="device"))
    assert isinstance(again, Denied) and again.rule == refused.rule


async def test_a_different_csr_while_one_awaits_approval_is_a_conflict(
    service: EnrollmentService,
) -> None:
    key = ec_key()
    csr = make_csr(key, cn="approve-me")
    pending = await service.enroll(_request("t4", csr, template="approval-required"))
    assert isinstance(pending, Pending)
    with pytest.raises(Conflict, match="waiting for certificate manager approval"):
        await service.enroll(_request("t4", make_csr(key, cn="other"), "approval-required"))
    repeat = await service.enroll(_request("t4", csr, template="approval-required"))
    assert isinstance(repeat, Pending) and repeat.request_id == pending.request_id
    assert len(await service.store.list_requests()) == 1


async def test_another_key_under_the_same_transaction_is_a_conflict(
    service: EnrollmentService,
) -> None:
    await service.enroll(_request("t5", make_csr(dns=("a.example.test",))))
    with pytest.raises(Conflict, match="different key"):
        await service.enroll(_request("t5", make_csr(dns=("a.example.test",))))


async def test_repeat_of_tells_a_repeat_from_a_request_to_judge(
    service: EnrollmentService,
) -> None:
    key = ec_key()
    csr = make_csr(key, dns=("a.example.test",))
    assert await service.repeat_of("cli", "t6", csr) is None  # a new transaction
    issued = await service.enroll(_request("t6", csr))
    again = await service.repeat_of("cli", "t6", make_csr(key, dns=("a.example.test",)))
    assert _serial(again) == _serial(issued)
    other = make_csr(key, dns=("b.example.test",))
    assert await service.repeat_of("cli", "t6", other) == NextAttempt("t6#2")
    with pytest.raises(Conflict):
        await service.repeat_of("cli", "t6", make_csr(dns=("a.example.test",)))
