"""The ``ms_ces`` connector against a loopback CES that replays the MS-WSTEP fixtures
(tests/vectors/ms): outcomes, fault classification, transport rules, journal idempotency."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from backends.ms_ces import MSCESConnector
from gateway.codecs.ms.wstrust import TokenResponse, build_response, parse_envelope, parse_request
from gateway.errors import CAUnavailable, ConfigError, ConnectorError
from gateway.model import ConnectorPending, Denied, IssuancePlan, Issued
from gateway.ports import ConnectorContext
from tests.helpers import free_port, make_csr
from tests.wstep_helpers import VECTORS


class MemoryJournal:
    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    async def get(self, request_id: str) -> bytes | None:
        return self.entries.get(request_id)

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        return self.entries.setdefault(request_id, certificate_der)


@dataclass
class FakeCES:
    """Answers every POST with ``reply`` (fixture name, status) and records requests."""

    reply: tuple[str, int] = ("rstrc_issued.xml", 200)
    delay: float = 0.0
    plain: tuple[int, str] | None = None
    #: a built answer instead of a fixture (body, status)
    answer: tuple[bytes, int] | None = None
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    peers: list[object] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((dict(request.headers), await request.read()))
        transport = request.transport
        self.peers.append(transport.get_extra_info("peername") if transport else None)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.plain is not None:
            return web.Response(status=self.plain[0], text=self.plain[1])
        if self.answer is not None:
            return web.Response(
                body=self.answer[0], status=self.answer[1], content_type="application/soap+xml"
            )
        name, status = self.reply
        return web.Response(
            body=(VECTORS / name).read_bytes(), status=status, content_type="application/soap+xml"
        )


@pytest.fixture
async def ces() -> AsyncIterator[tuple[FakeCES, int]]:
    fake = FakeCES()
    app = web.Application()
    app.router.add_post("/CES", fake.handle)
    app.router.add_post("/CEP", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield fake, port
    await runner.cleanup()


def connector(port: int, journal: MemoryJournal | None = None, **extra: Any) -> MSCESConnector:
    settings = {
        "url": f"http://127.0.0.1:{port}/CES",
        "policy_url": f"http://127.0.0.1:{port}/CEP",
        "allow_http": True,
        "username": "svc-certgate",
        "password": "env:CES_TEST_PASSWORD",
        "issuer_chain": str(VECTORS / "chain.pem"),
        "retry_after": "7s",
        "timeout": "1s",
        **extra,
    }
    settings = {k: v for k, v in settings.items() if v is not None}
    return MSCESConnector(
        ConnectorContext(
            "adcs", settings, Path("/nonexistent"), journal or MemoryJournal(), "t.toml"
        )
    )


def plan(request_id: str = "req-1", adcs: str | None = "WebServer") -> IssuancePlan:
    csr = make_csr(cn="a.example", dns=("a.example",))
    now = datetime.now(UTC)
    return IssuancePlan(
        request_id=request_id,
        template="tls-server",
        template_oid="2.25.1",
        template_major=100,
        template_minor=0,
        connector="adcs",
        subject=csr.subject,
        public_key=csr.public_key(),  # type: ignore[arg-type]
        not_before=now,
        not_after=now + timedelta(days=1),
        extensions=(),
        csr=csr,
        connector_params={"adcs_template": adcs} if adcs else {},
    )


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CES_TEST_PASSWORD", "s3cret-pw")


async def _run(port: int, call: Callable[[MSCESConnector], Any], **extra: Any) -> Any:
    conn = connector(port, **extra)
    await conn.start()
    try:
        return await call(conn)
    finally:
        await conn.close()


async def test_issued_returns_leaf_and_ordered_chain_and_sends_the_csr_untouched(
    ces: tuple[FakeCES, int],
) -> None:
    fake, port = ces
    p = plan()
    outcome = await _run(port, lambda c: c.submit(p))
    leaf = x509.load_pem_x509_certificate((VECTORS / "leaf.pem").read_bytes())
    chain = x509.load_pem_x509_certificates((VECTORS / "chain.pem").read_bytes())
    assert isinstance(outcome, Issued)
    assert outcome.certificate == leaf and list(outcome.chain) == chain
    headers, body = fake.seen[0]
    assert headers["Content-Length"] == str(len(body))  # IIS refuses chunked bodies
    assert "Transfer-Encoding" not in headers
    assert headers["Content-Type"].startswith("application/soap+xml")
    envelope = parse_envelope(body)
    request = parse_request(envelope)
    assert request.token == p.csr.public_bytes(Encoding.DER)
    assert request.context["CertificateTemplate"] == "WebServer"
    assert request.context["certgate-request-id"] == "req-1"
    assert (envelope.username, envelope.password) == ("svc-certgate", "s3cret-pw")


async def test_template_name_falls_back_to_the_certgate_template(ces: tuple[FakeCES, int]) -> None:
    fake, port = ces
    await _run(port, lambda c: c.submit(plan(adcs=None)))
    request = parse_request(parse_envelope(fake.seen[0][1]))
    assert request.context["CertificateTemplate"] == "tls-server"


async def test_resubmission_after_issue_comes_from_the_journal_not_the_ca(
    ces: tuple[FakeCES, int],
) -> None:
    fake, port = ces
    journal = MemoryJournal()
    conn = connector(port, journal)
    await conn.start()
    try:
        first = await conn.submit(plan("same"))
        second = await conn.submit(plan("same"))
    finally:
        await conn.close()
    assert isinstance(first, Issued) and isinstance(second, Issued)
    assert first.certificate == second.certificate
    assert len(fake.seen) == 1 and "same" in journal.entries


async def test_pending_gives_the_ces_request_id_and_poll_queries_it(
    ces: tuple[FakeCES, int],
) -> None:
    fake, port = ces
    fake.reply = ("rstrc_pending.xml", 200)
    pending = await _run(port, lambda c: c.submit(plan()))
    assert pending == ConnectorPending("65", 7)
    fake.reply = ("rstrc_issued.xml", 200)
    issued = await _run(port, lambda c: c.poll("65"))
    assert isinstance(issued, Issued)
    query = parse_request(parse_envelope(fake.seen[-1][1]))
    assert query.is_query and query.request_id == "65"


def adcs_pending(request_id: str, reference: str | None) -> bytes:
    """A pending answer shaped as AD CS shapes it (MS-WSTEP §3.1.4.1.3.2, §4)."""
    return build_response(
        TokenResponse(request_id, "Taken Under Submission", reference=reference),
        relates_to="urn:uuid:00000000-0000-4000-8000-000000000001",
    )


async def test_adcs_pending_answer_is_recorded_by_number_and_polled_at_the_configured_url(
    ces: tuple[FakeCES, int],
) -> None:
    fake, port = ces
    url = f"http://127.0.0.1:{port}/CES"
    fake.answer = (adcs_pending("4711", url), 200)
    conn = connector(port)
    await conn.start()
    try:
        pending = await conn.submit(plan())
        assert pending == ConnectorPending("4711", 7)
        still = await conn.poll("4711")  # still under submission
        assert still == ConnectorPending("4711", 7)
        fake.answer = None
        issued = await conn.poll("4711")
    finally:
        await conn.close()
    assert isinstance(issued, Issued) and len(fake.seen) == 3
    for _, body in fake.seen[1:]:
        query = parse_request(parse_envelope(body))
        assert query.is_query and query.request_id == "4711"
        assert parse_envelope(body).to == url


async def test_a_reference_to_another_origin_is_logged_and_never_sent_credentials(
    ces: tuple[FakeCES, int], caplog: pytest.LogCaptureFixture
) -> None:
    fake, port = ces
    fake.answer = (adcs_pending("12", "https://elsewhere.example/CES"), 200)
    conn = connector(port)
    await conn.start()
    try:
        with caplog.at_level("WARNING", logger="certgate.connector.ms_ces"):
            assert await conn.submit(plan()) == ConnectorPending("12", 7)
            assert await conn.poll("12") == ConnectorPending("12", 7)
    finally:
        await conn.close()
    assert len(fake.seen) == 2  # both calls reached the configured endpoint
    warnings = [r.getMessage() for r in caplog.records if "elsewhere.example" in r.getMessage()]
    assert len(warnings) == 1 and f"127.0.0.1:{port}/CES" in warnings[0]


async def test_legacy_string_ids_are_kept_and_polled_verbatim(ces: tuple[FakeCES, int]) -> None:
    fake, port = ces
    legacy = "0b9f3c52-6a8e-4f0e-9d43-3f8f2a1d7c10"  # what certgate's CES answered before
    fake.answer = (adcs_pending(legacy, None), 200)
    assert await _run(port, lambda c: c.submit(plan())) == ConnectorPending(legacy, 7)
    fake.answer = None
    assert isinstance(await _run(port, lambda c: c.poll(legacy)), Issued)
    assert parse_request(parse_envelope(fake.seen[-1][1])).request_id == legacy


async def test_a_number_with_leading_zeros_is_recorded_as_the_number(
    ces: tuple[FakeCES, int],
) -> None:
    fake, port = ces
    fake.answer = (adcs_pending("0065", None), 200)
    assert await _run(port, lambda c: c.submit(plan())) == ConnectorPending("65", 7)


@pytest.mark.parametrize("wire", ["0", "4294967296", "x" * 256, "a b", "\u00e9t\u00e9"])
async def test_an_unusable_request_id_is_a_connector_error(
    ces: tuple[FakeCES, int], wire: str
) -> None:
    fake, port = ces
    fake.answer = (adcs_pending(wire, None), 200)
    with pytest.raises(ConnectorError, match="RequestID"):
        await _run(port, lambda c: c.submit(plan()))


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
