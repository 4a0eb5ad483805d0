# ruff: noqa: F811  (pytest fixtures imported from tests.ces_fixtures)
"""The ``ms_ces`` connector against a loopback CES that replays the MS-WSTEP fixtures
(tests/vectors/ms): fault classification, transport rules, chain discovery, settings
validation, readiness and connection pooling."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backends.ms_ces import MSCESConnector
from gateway.errors import CAUnavailable, ConfigError, ConnectorError
from gateway.model import Denied, Issued
from gateway.ports import ConnectorContext
from tests.ces_fixtures import FakeCES, MemoryJournal, _password, _run, ces, connector, plan  # noqa: F401
from tests.helpers import free_port
from tests.wstep_helpers import VECTORS


@pytest.mark.parametrize(("status", "error"), [(500, CAUnavailable), (200, ConnectorError)])
async def test_a_malformed_soap_body_is_transient_only_with_a_server_error_status(
    ces: tuple[FakeCES, int], status: int, error: type[Exception]
) -> None:
    fake, port = ces
    fake.answer = (b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'>", status)
    with pytest.raises(error, match="malformed"):
        await _run(port, lambda c: c.submit(plan()))


@pytest.mark.parametrize("status", [500, 400])  # AD CS/WCF: 500; older certgate CES: 400
@pytest.mark.parametrize(
    ("fixture", "name"),
    [
        ("fault_bad_template_version.xml", "CERTSRV_E_BAD_TEMPLATE_VERSION (0x80094807)"),
        ("fault_enroll_denied.xml", "CERTSRV_E_ENROLL_DENIED (0x80094011)"),
        ("fault_restricted_officer.xml", "CERTSRV_E_RESTRICTEDOFFICER (0x80094009)"),
    ],
)
async def test_ca_refusals_become_ca_denied_with_the_decoded_hresult(
    ces: tuple[FakeCES, int], fixture: str, name: str, status: int
) -> None:
    fake, port = ces
    fake.reply = (fixture, status)
    outcome = await _run(port, lambda c: c.submit(plan()))
    assert isinstance(outcome, Denied)
    assert outcome.code == "ca-denied" and outcome.rule == "ca"
    assert outcome.detail.startswith(name)


@pytest.mark.parametrize("status", [500, 400])
@pytest.mark.parametrize("fixture", ["fault_ca_unavailable.xml", "fault_internal_service.xml"])
async def test_transient_faults_become_ca_unavailable_with_the_retry_hint(
    ces: tuple[FakeCES, int], fixture: str, status: int
) -> None:
    fake, port = ces
    fake.reply = (fixture, status)
    with pytest.raises(CAUnavailable) as info:
        await _run(port, lambda c: c.submit(plan()))
    assert info.value.retry_after == 7


async def test_addressing_fault_is_a_permanent_connector_error(ces: tuple[FakeCES, int]) -> None:
    fake, port = ces
    fake.reply = ("fault_address_filter_mismatch.xml", 500)
    with pytest.raises(ConnectorError, match="DestinationUnreachable"):
        await _run(port, lambda c: c.submit(plan()))


@pytest.mark.parametrize(
    ("status", "error"), [(401, ConnectorError), (404, ConnectorError), (503, CAUnavailable)]
)
async def test_non_soap_answers_are_classified_by_status(
    ces: tuple[FakeCES, int], status: int, error: type[Exception]
) -> None:
    fake, port = ces
    fake.plain = (status, "<html>nope</html>")
    with pytest.raises(error):
        await _run(port, lambda c: c.submit(plan()))


async def test_timeout_becomes_ca_unavailable(ces: tuple[FakeCES, int]) -> None:
    fake, port = ces
    fake.delay = 3
    with pytest.raises(CAUnavailable, match="unreachable"):
        await _run(port, lambda c: c.submit(plan()))


async def test_closed_port_becomes_ca_unavailable() -> None:
    with pytest.raises(CAUnavailable) as info:
        await _run(free_port(), lambda c: c.submit(plan()))
    assert info.value.retry_after == 7


async def test_chain_is_learned_from_cep_when_not_configured(ces: tuple[FakeCES, int]) -> None:
    fake, port = ces
    fake.reply = ("get_policies_response.xml", 200)
    conn = connector(port, issuer_chain=None)
    await conn.start()
    try:
        chain = await conn.ca_chain()
    finally:
        await conn.close()
    assert chain[0].subject.rfc4514_string() == "CN=Fixture Issuing CA"


async def test_revoke_says_ces_cannot(ces: tuple[FakeCES, int]) -> None:
    _, port = ces
    from gateway.model import RevocationReason

    with pytest.raises(ConnectorError, match="cannot revoke"):
        await _run(port, lambda c: c.revoke(5, RevocationReason.UNSPECIFIED, datetime.now(UTC)))


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"url": "http://ces.example/CES", "allow_http": False}, "url"),
        ({"password": None}, "username"),
        ({"auth": "certificate"}, "client_certificate"),
        ({"auth": "telepathy"}, "auth"),
        ({"issuer_chain": None, "policy_url": None}, "issuer_chain"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_settings_are_validated_with_the_key_path(settings: dict[str, Any], key: str) -> None:
    base = {
        "url": "https://ces.example/CES",
        "username": "u",
        "password": "env:CES_TEST_PASSWORD",
        "issuer_chain": str(VECTORS / "chain.pem"),
    }
    merged = {k: v for k, v in {**base, **settings}.items() if v is not None}
    with pytest.raises(ConfigError) as info:
        MSCESConnector(ConnectorContext("adcs", merged, Path("."), MemoryJournal(), "t.toml"))
    assert info.value.key_path == f"connectors.adcs.{key}"


def test_kerberos_without_pyspnego_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whether or not the extra is installed here: a None entry makes `import spnego` fail.
    monkeypatch.setitem(sys.modules, "spnego", None)
    with pytest.raises(ConfigError, match="pyspnego"):
        MSCESConnector(
            ConnectorContext(
                "adcs",
                {
                    "url": "https://ces.example/CES",
                    "auth": "kerberos",
                    "issuer_chain": str(VECTORS / "chain.pem"),
                },
                Path("."),
                MemoryJournal(),
                "t.toml",
            )
        )


async def test_readiness_check_passes_when_ces_answers_soap_and_fails_when_down(
    ces: tuple[FakeCES, int],
) -> None:
    fake, port = ces
    fake.reply = ("fault_address_filter_mismatch.xml", 400)
    await _run(port, lambda c: c.check())  # any SOAP answer means the endpoint is up
    with pytest.raises(CAUnavailable):
        await _run(free_port(), lambda c: c.check())


async def test_connections_are_pooled_across_calls(ces: tuple[FakeCES, int]) -> None:
    fake, port = ces
    conn = connector(port)
    await conn.start()
    try:
        for i in range(3):
            assert isinstance(await conn.submit(plan(f"pooled-{i}")), Issued)
    finally:
        await conn.close()
    assert len(fake.peers) == 3 and len(set(fake.peers)) == 1  # one keep-alive connection
