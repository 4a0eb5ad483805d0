"""The suite every CA connector passes (``gateway.ports.CAConnector``).

Add a connector by adding a factory to ``FACTORIES``: an async function that returns a started
connector for a data directory and an issuance journal. Connectors that may answer "under
submission" skip the checks that need an issued certificate.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from backends.local_ca import LocalCA
from gateway.errors import CAUnavailable, ConnectorError
from gateway.model import ConnectorPending, Denied, IssuancePlan, Issued, RevocationReason
from gateway.ports import CAConnector, ConnectorContext, CRLCapable, IssuanceJournal

CONNECTOR_ERRORS = (CAUnavailable, ConnectorError)


class MemoryJournal:
    """An in-memory :class:`gateway.ports.IssuanceJournal` (the real one is the SQL store)."""

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    async def get(self, request_id: str) -> bytes | None:
        return self.entries.get(request_id)

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        return self.entries.setdefault(request_id, certificate_der)


Factory = Callable[[Path, IssuanceJournal], Awaitable[CAConnector]]


async def _local_ca(data_dir: Path, journal: IssuanceJournal) -> CAConnector:
    connector = LocalCA(
        ConnectorContext(
            "local",
            {"passphrase": "env:CERTGATE_CONTRACT_CA_PASS", "crl_urls": ["http://ca.test/crl"]},
            data_dir,
            journal,
        )
    )
    await connector.start()
    return connector


FACTORIES: dict[str, Factory] = {"local_ca": _local_ca}


@pytest.fixture(params=sorted(FACTORIES))
async def connector(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[CAConnector]:
    monkeypatch.setenv("CERTGATE_CONTRACT_CA_PASS", "contract-suite")
    started = await FACTORIES[request.param](tmp_path, MemoryJournal())
    yield started
    await started.close()


def _plan(request_id: str, connector: CAConnector, **extra: Any) -> IssuancePlan:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Contract"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{request_id}.contract.test"),
        ]
    )
    values: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.KeyUsage(True, False, False, False, False, False, False, False, False), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.SubjectAlternativeName([x509.DNSName(f"{request_id}.contract.test")]), False),
    ]
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    now = datetime.now(UTC).replace(microsecond=0)
    fields: dict[str, Any] = {
        "request_id": request_id,
        "template": "tls-server",
        "template_oid": "1.3.6.1.4.1.311.21.8.1.1",
        "template_major": 1,
        "template_minor": 0,
        "connector": connector.name,
        "subject": subject,
        "public_key": key.public_key(),
        "not_before": now - timedelta(minutes=5),
        "not_after": now + timedelta(days=7),
        "extensions": tuple(x509.Extension(v.oid, c, v) for v, c in values),
        "csr": csr,
        **extra,
    }
    return IssuancePlan(**fields)


async def _issued(connector: CAConnector, plan: IssuancePlan) -> Issued:
    outcome = await connector.submit(plan)
    if not isinstance(outcome, Issued):
        pytest.skip(f"{connector.name} did not issue at once ({type(outcome).__name__})")
    return outcome


def _chains_up(certs: tuple[x509.Certificate, ...]) -> None:
    for child, parent in itertools.pairwise(certs):
        child.verify_directly_issued_by(parent)
        assert parent.not_valid_before_utc <= child.not_valid_before_utc
        assert child.not_valid_after_utc <= parent.not_valid_after_utc


async def test_submit_returns_issued_pending_or_denied(connector: CAConnector) -> None:
    outcome = await connector.submit(_plan("outcome", connector))
    assert isinstance(outcome, Issued | ConnectorPending | Denied)


async def test_issued_certificate_matches_the_plan(connector: CAConnector) -> None:
    plan = _plan("match", connector)
    cert = (await _issued(connector, plan)).certificate
    assert cert.subject == plan.subject
    assert cert.public_key() == plan.public_key
    assert cert.not_valid_before_utc == plan.not_before
    assert cert.not_valid_after_utc == plan.not_after
    for planned in plan.extensions:
        assert cert.extensions.get_extension_for_oid(planned.oid) == planned


async def test_submit_is_idempotent_per_request_id(connector: CAConnector) -> None:
    plan = _plan("again", connector)
    first = await _issued(connector, plan)
    second = await connector.submit(plan)
    assert isinstance(second, Issued)
    assert second.certificate == first.certificate


async def test_different_request_ids_get_different_certificates(connector: CAConnector) -> None:
    one = await _issued(connector, _plan("one", connector))
    two = await _issued(connector, _plan("two", connector))
    assert one.certificate.serial_number != two.certificate.serial_number


async def test_ca_chain_is_non_empty_and_ends_at_a_self_signed_root(
    connector: CAConnector,
) -> None:
    chain = await connector.ca_chain()
    assert chain
    _chains_up(chain)
    chain[-1].verify_directly_issued_by(chain[-1])


async def test_issued_certificate_chains_to_the_ca_chain(connector: CAConnector) -> None:
    outcome = await _issued(connector, _plan("chain", connector))
    assert outcome.chain == await connector.ca_chain()
    _chains_up(outcome.full_chain)


async def test_check_passes_when_healthy(connector: CAConnector) -> None:
    await connector.check()


async def test_revoke_accepts_an_issued_serial(connector: CAConnector) -> None:
    cert = (await _issued(connector, _plan("revoke", connector))).certificate
    try:
        await connector.revoke(cert.serial_number, RevocationReason.SUPERSEDED, datetime.now(UTC))
    except ConnectorError as exc:  # revocation is an optional capability for some CAs
        assert "revoc" in exc.detail.lower()


async def test_crl_capable_connectors_publish_a_crl_signed_by_the_issuing_ca(
    connector: CAConnector,
) -> None:
    if not isinstance(connector, CRLCapable):
        pytest.skip("not CRL-capable")
    crl = x509.load_der_x509_crl(await connector.crl([]))
    issuing = (await connector.ca_chain())[0]
    assert crl.issuer == issuing.subject
    assert crl.is_signature_valid(issuing.public_key())  # type: ignore[arg-type]


async def _outcome_or_connector_error(call: Awaitable[Any]) -> None:
    try:
        await call
    except CONNECTOR_ERRORS:
        pass


async def test_poll_of_an_unknown_request_raises_only_connector_errors(
    connector: CAConnector,
) -> None:
    await _outcome_or_connector_error(connector.poll("no-such-request"))


async def test_an_unencodable_plan_raises_only_connector_errors(connector: CAConnector) -> None:
    plan = _plan("duplicate", connector)
    broken = _plan("duplicate", connector, extensions=(*plan.extensions, plan.extensions[0]))
    await _outcome_or_connector_error(connector.submit(broken))


async def test_invalid_revocation_raises_only_connector_errors(connector: CAConnector) -> None:
    await _outcome_or_connector_error(
        connector.revoke(0, RevocationReason.KEY_COMPROMISE, datetime.now(UTC))
    )


async def test_a_closed_connector_raises_only_connector_errors(connector: CAConnector) -> None:
    await connector.close()
    for call in (
        connector.submit(_plan("closed", connector)),
        connector.check(),
        connector.poll("closed"),
    ):
        await _outcome_or_connector_error(call)
