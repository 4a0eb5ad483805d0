"""/metrics moves with enrollments (issue #15 item 4), in-process: the real app factory and
service, EST reached as a trusted TLS-terminating proxy with HTTP Basic, and every scrape
parsed with prometheus_client's own parser. Counters are per process and shared by every app in
it, so each test compares a scrape after the action with one before it."""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import load_config
from gateway.pkix import cms
from gateway.server.app import LISTENERS, MAIN_TLS, components_of, create_app
from protocols.est.routes import EST_CONTEXT
from protocols.scep.messages import PKIStatus
from tests import scep_client as sc
from tests.est_helpers import write_est_config
from tests.helpers import free_port, write_config
from tests.scep_helpers import DEFAULT_ENDPOINTS, STATIC_PASSWORD, scep_config
from tests.wstep_helpers import tls_files

Client = Callable[[Any], Awaitable[Any]]
PASSWORD = "correct horse battery staple"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    """The sample's value; 0 for a labelled counter not yet incremented."""
    return samples.get((metric, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, metric: str, /, **labels: str) -> float:
    return value(after, metric, **labels) - value(before, metric, **labels)


class H:
    def __init__(self, client: Any, app: Any) -> None:
        self.client, self.app = client, app

    async def scrape(self) -> Samples:
        r = await self.client.get("/metrics")
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(await r.text())

    async def enroll(self, der: bytes, label: str = "", auth: dict[str, str] = AUTH) -> Any:
        path = f"/.well-known/est/{label + '/' if label else ''}simpleenroll"
        return await self.client.post(
            path,
            data=base64.b64encode(der),
            headers={"Content-Type": "application/pkcs10", **auth},
        )


async def harness(tmp: Path, aiohttp_client: Client, extra: str = "") -> H:
    tmp.mkdir(exist_ok=True)
    cfg = write_est_config(
        tmp,
        est_port=free_port(),
        est="""
        trusted_proxies = ["127.0.0.1/32"]
        [est.labels.approval]
        template = "approval-required"
        """,
        extra=extra,
    )
    app = await create_app(load_config(cfg))
    await app[EST_CONTEXT].state.add_user("alice", PASSWORD, (), replace=False)
    return H(await aiohttp_client(app), app)


@pytest.fixture
async def h(tmp_path: Path, aiohttp_client: Client) -> H:
    return await harness(tmp_path, aiohttp_client)


def csr(cn: str, key: Any = None) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.DER)


async def test_an_est_issuance_counts_once_with_its_labels(h: H) -> None:
    before = await h.scrape()
    r = await h.enroll(csr("metrics-1"))
    assert r.status == 200, await r.text()
    after = await h.scrape()
    device = {"protocol": "est", "template": "device"}
    est_op = {"protocol": "est", "operation": "simpleenroll"}
    local = {"connector": "local", "operation": "submit"}
    assert delta(before, after, "certgate_enrollments_total", **device, outcome="issued") == 1
    assert delta(before, after, "certgate_enrollments_total", **device, outcome="denied") == 0
    assert delta(before, after, "certgate_connector_calls_total", **local, result="issued") == 1
    assert delta(before, after, "certgate_http_request_duration_seconds_count", **est_op) == 1
    assert delta(before, after, "certgate_http_responses_total", **est_op, code="200") == 1


async def test_a_policy_denial_counts_by_rule(h: H) -> None:
    before = await h.scrape()
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    r = await h.enroll(csr("too-weak", weak))
    assert r.status == 400, await r.text()
    after = await h.scrape()
    denied = {
        dict(labels)["rule"]: v - before.get((name, labels), 0.0)
        for (name, labels), v in after.items()
        if name == "certgate_denials_total" and dict(labels)["protocol"] == "est"
    }
    assert {rule for rule, delta in denied.items() if delta} == {"rsa-key-size"}, denied
    device = {"protocol": "est", "template": "device"}
    assert delta(before, after, "certgate_enrollments_total", **device, outcome="denied") == 1


async def test_pending_requests_are_read_from_the_store(h: H, aiohttp_client: Client) -> None:
    labels = {"reason": "approval", "template": "approval-required"}
    r = await h.enroll(csr("needs-approval"), label="approval")
    assert r.status == 202, await r.text()
    pending = await h.scrape()
    assert value(pending, "certgate_pending_requests", **labels) == 1
    assert value(pending, "certgate_store_up") == 1
    # Another instance on the same database (a restart, another worker) that served nothing
    # reports the same figure: it is read from the store, not counted in a process.
    config = components_of(h.app).config
    other = H(await aiohttp_client(await create_app(config)), None)
    assert value(await other.scrape(), "certgate_pending_requests", **labels) == 1
    request_id = (await components_of(h.app).store.list_requests())[0].id
    await components_of(h.app).service.approve(request_id, "manager")
    after = await h.scrape()
    assert value(after, "certgate_pending_requests", **labels) == 0
    issued = {"protocol": "est", "template": "approval-required", "outcome": "issued"}
    assert delta(pending, after, "certgate_enrollments_total", **issued) == 1


async def test_ca_and_listener_certificates_report_their_expiry(h: H) -> None:
    samples = await h.scrape()
    chain = await components_of(h.app).service.ca_chain()
    now = datetime.now(UTC)
    expiry = "certgate_certificate_expiry_seconds"
    issuing = value(samples, expiry, kind="ca", name="local", role="issuing")
    assert abs(issuing - (chain[0].not_valid_after_utc - now).total_seconds()) < 60
    root = value(samples, expiry, kind="ca", name="local", role="root")
    assert abs(root - (chain[-1].not_valid_after_utc - now).total_seconds()) < 60
    # The EST listener's server certificate (issued by the local CA into <data>/est/), as
    # read from the SSLContext the listener serves with.
    assert any(lst.name == "est" and lst.ssl_context for lst in h.app[LISTENERS])
    data_dir = components_of(h.app).config.data_dir
    served = x509.load_pem_x509_certificates((data_dir / "est" / "server.pem").read_bytes())[0]
    listener = value(samples, expiry, kind="listener", name="est", role="server")
    assert abs(listener - (served.not_valid_after_utc - now).total_seconds()) < 60


async def test_labels_never_carry_the_raw_path(h: H) -> None:
    await h.client.get("/.well-known/est/no-such-operation-xyz")
    await h.client.get("/no/such/path-xyz")
    text = await (await h.client.get("/metrics")).text()
    assert "xyz" not in text
    samples = parse(text)
    responses = "certgate_http_responses_total"
    assert value(samples, responses, protocol="est", operation="other", code="404") >= 1
    assert value(samples, responses, protocol="none", operation="unmatched", code="404") >= 1


async def test_an_est_401_is_logged_and_counted_without_the_password(
    h: H, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Tr0ub4dor&3-wrong"
    bad = {"Authorization": "Basic " + base64.b64encode(f"alice:{wrong}".encode()).decode()}
    before = await h.scrape()
    with caplog.at_level(logging.DEBUG):
        r = await h.enroll(csr("intruder"), auth=bad)
    assert r.status == 401
    after = await h.scrape()
    refused = [r for r in caplog.records if r.name == "certgate.est" and "401" in r.getMessage()]
    assert refused, [r.getMessage() for r in caplog.records]
    fields = refused[0].certgate_fields  # type: ignore[attr-defined]
    assert fields["code"] == "401" and fields["reason"]
    assert wrong not in caplog.text
    assert bad["Authorization"].split()[1] not in caplog.text
    refusals = "certgate_protocol_refusals_total"
    assert delta(before, after, refusals, protocol="est", code="401") == 1


async def test_metrics_can_be_restricted_to_networks(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    elsewhere = await harness(tmp_path / "a", aiohttp_client, '[metrics]\nallow = ["10.0.0.0/8"]\n')
    r = await elsewhere.client.get("/metrics")
    assert r.status == 403
    assert "[metrics] allow" in await r.text()
    loopback = await harness(tmp_path / "b", aiohttp_client, '[metrics]\nallow = ["127.0.0.1"]\n')
    assert (await loopback.client.get("/metrics")).status == 200


async def test_metrics_can_be_switched_off(tmp_path: Path, aiohttp_client: Client) -> None:
    off = await harness(tmp_path, aiohttp_client, "[metrics]\nenabled = false\n")
    assert (await off.client.get("/metrics")).status == 404


async def test_the_tls_main_listener_reports_its_certificate(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    """With ``[server.tls]`` the main listener's certificate (issued by the local CA on first
    start) is read from the SSLContext it serves with; the scrape goes over that TLS."""
    cfg = write_est_config(tmp_path, est_port=free_port(), extra="[server.tls]\n")
    app = await create_app(load_config(cfg))
    main = app[MAIN_TLS]
    server = await aiohttp_server(app, ssl=main.context)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"https://127.0.0.1:{server.port}/metrics", ssl=False) as r:
            assert r.status == 200, await r.text()
            samples = parse(await r.text())
    data_dir = components_of(app).config.data_dir
    served = x509.load_pem_x509_certificates((data_dir / "tls" / "server.pem").read_bytes())[0]
    expected = (served.not_valid_after_utc - datetime.now(UTC)).total_seconds()
    main_expiry = value(
        samples, "certgate_certificate_expiry_seconds", kind="listener", name="main", role="server"
    )
    assert abs(main_expiry - expected) < 60


async def test_an_extra_tls_listener_does_not_serve_metrics_but_reports_its_certificate(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    """One runner serving the main listener (plain) and the CES TLS listener, as serve does:
    /metrics answers 404 on the front-end's listener and, on the main one, reports that
    listener's certificate."""
    cert, key = tls_files(tmp_path / "tls")
    cfg = write_config(
        tmp_path,
        f"""
        [wstep]
        enabled = true
        [wstep.tls]
        host = "127.0.0.1"
        port = {free_port()}
        certificate = "{cert}"
        key = "{key}"
        """,
    )
    app = await create_app(load_config(cfg))
    ces = next(lst for lst in app[LISTENERS] if lst.name == "wstep-tls")
    main = await aiohttp_server(app)
    site = web.TCPSite(main.runner, "127.0.0.1", ces.port, ssl_context=ces.ssl_context)
    await site.start()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"https://127.0.0.1:{ces.port}/metrics", ssl=False) as r:
            assert r.status == 404
            assert "main listener only" in await r.text()
        async with session.get(f"http://127.0.0.1:{main.port}/metrics") as r:
            assert r.status == 200
            samples = parse(await r.text())
    served = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    expected = (served.not_valid_after_utc - datetime.now(UTC)).total_seconds()
    expiry = "certgate_certificate_expiry_seconds"
    got = value(samples, expiry, kind="listener", name="wstep-tls", role="server")
    assert abs(got - expected) < 60


async def test_scep_issuances_and_failinfo_refusals_count(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    app = await create_app(load_config(scep_config(tmp_path, DEFAULT_ENDPOINTS)))
    h = H(await aiohttp_client(app), app)
    body = await (await h.client.get("/scep/devices?operation=GetCACert")).read()
    ra = cms.read_certs_only(body)[0][0]

    async def enroll(cn: str, challenge: str) -> int:
        c = sc.Client(ra)
        message = c.pkcs_req(sc.make_csr(c.key, cn, challenge=challenge))
        r = await h.client.post("/scep/devices?operation=PKIOperation", data=message)
        return int(c.read(await r.read()).status)

    before = await h.scrape()
    assert await enroll("scep-metrics", STATIC_PASSWORD) == PKIStatus.SUCCESS
    assert await enroll("scep-intruder", "wrong-challenge") == PKIStatus.FAILURE
    after = await h.scrape()
    issued = {"protocol": "scep", "template": "scep-device", "outcome": "issued"}
    assert delta(before, after, "certgate_enrollments_total", **issued) == 1
    refused = {"protocol": "scep", "code": "BAD_REQUEST"}
    assert delta(before, after, "certgate_protocol_refusals_total", **refused) == 1
    operation = {"protocol": "scep", "operation": "PKIOperation"}
    assert delta(before, after, "certgate_http_request_duration_seconds_count", **operation) == 2
