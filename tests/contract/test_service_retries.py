"""The service's retry mechanism (gateway.service.retries) on every store backend (SQLite raw,
SQLite Core, PostgreSQL) and both issuance strategies: it rests on the store's unique
(protocol, transaction_id) key, so a repeat replays, a different CSR under the same id is
judged afresh, and concurrent duplicates of either never issue twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from backends.local_ca import LocalCA
from gateway.model import EnrollmentRequest, Issued, Outcome, Requester, RequestKind
from gateway.pkix.csr import csr_der, csr_spki_sha256
from gateway.policy import PolicyEngine, load_templates
from gateway.ports import CAConnector, ConnectorContext
from gateway.service import EnrollmentService, local_requester, request_digest
from gateway.store import SQLStore
from protocols.est.state import EstState
from protocols.est.transactions import find_transaction, transaction_key
from tests.fake_connectors import JournaledLocalCA
from tests.helpers import TEMPLATES, make_csr
from tests.pki_helpers import ec_key


@pytest.fixture(params=["in-process", "recorded-first"])
async def service(
    request: pytest.FixtureRequest, store: SQLStore, tmp_path: Path
) -> AsyncIterator[EnrollmentService]:
    kind = LocalCA if request.param == "in-process" else JournaledLocalCA
    context = ConnectorContext("local", {}, tmp_path, store, startup_warnings=False)
    connector: CAConnector = kind(context)
    await connector.start()
    service = EnrollmentService(
        store, PolicyEngine(load_templates(TEMPLATES)), {"local": connector}
    )
    await service.start()
    yield service
    await connector.close()


def _enroll(
    service: EnrollmentService, txn: str, csr: x509.CertificateSigningRequest
) -> asyncio.Future[Outcome]:
    request = EnrollmentRequest(
        csr=csr, template="tls-server", requester=local_requester("alice"), transaction_id=txn
    )
    return asyncio.ensure_future(service.enroll(request))


def _now() -> datetime:
    return datetime.now(UTC)


def _serial(outcome: Outcome) -> int:
    assert isinstance(outcome, Issued), outcome
    return outcome.certificate.serial_number


async def test_a_repeat_replays_and_a_different_csr_is_judged_afresh(
    service: EnrollmentService, store: SQLStore
) -> None:
    key = ec_key()
    first = await _enroll(service, "t", make_csr(key, dns=("a.example.test",)))
    again = await _enroll(service, "t", make_csr(key, dns=("a.example.test",)))
    other = await _enroll(service, "t", make_csr(key, dns=("b.example.test",)))
    assert _serial(again) == _serial(first) != _serial(other)
    assert len(await store.list_certificates()) == 2
    attempt = await store.find_request("cli", "t#2")
    assert attempt is not None and attempt.certificate_serial == format(_serial(other), "x")


async def test_concurrent_duplicates_of_a_new_attempt_issue_once(
    service: EnrollmentService, store: SQLStore
) -> None:
    key = ec_key()
    await _enroll(service, "c", make_csr(key, dns=("a.example.test",)))
    changed = [make_csr(key, dns=("b.example.test",)) for _ in range(4)]
    outcomes = await asyncio.gather(*(_enroll(service, "c", csr) for csr in changed))
    assert len({_serial(outcome) for outcome in outcomes}) == 1
    assert len(await store.list_certificates()) == 2
    assert await store.find_request("cli", "c#3") is None


async def test_est_derived_transactions_on_the_service(
    service: EnrollmentService, store: SQLStore
) -> None:
    """EST (no client transaction id: protocols.est.transactions derives key.<generation>)
    on the same mechanism: a re-signed repeat replays, a different CSR is attempt key.0#2 with
    its own certificate, and concurrent copies of another CSR issue it once. EST's window
    reads the service's clock (the system clock here), as the front-end does."""
    state = EstState(store, _now)
    key = ec_key()
    spki = csr_spki_sha256(make_csr(key))

    async def est(csr: x509.CertificateSigningRequest) -> Outcome:
        txn = await find_transaction(
            store, state, label="", template="tls-server", principal="alice", spki=spki,
            kind=RequestKind.NEW, prior=None, digest=request_digest(csr_der(csr)),
            retry_window=300, now=_now(),
        )  # fmt: skip
        request = EnrollmentRequest(
            csr=csr,
            template="tls-server",
            requester=Requester("est", "alice", "basic"),
            transaction_id=txn.transaction_id,
        )
        return await service.enroll(request)

    first = await est(make_csr(key, dns=("a.example.test",)))
    again = await est(make_csr(key, dns=("a.example.test",)))
    other = await est(make_csr(key, dns=("b.example.test",)))
    assert _serial(again) == _serial(first) != _serial(other)
    stem = transaction_key("", "tls-server", "alice", spki, RequestKind.NEW, None)
    attempt = await store.find_request("est", f"{stem}.0#2")
    assert attempt is not None and attempt.certificate_serial == format(_serial(other), "x")
    changed = [make_csr(key, dns=("c.example.test",)) for _ in range(4)]
    outcomes = await asyncio.gather(*(est(csr) for csr in changed))
    assert len({_serial(outcome) for outcome in outcomes}) == 1
    assert len(await store.list_certificates()) == 3
