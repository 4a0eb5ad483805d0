# ruff: noqa: F811  (pytest fixtures imported from tests.ces_fixtures)
"""The ``ms_ces`` connector against a loopback CES that replays the MS-WSTEP fixtures
(tests/vectors/ms): outcomes, pending answers and polling, journal idempotency (faults,
settings and transport: test_ces_connector_faults.py)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.codecs.ms.wstrust import TokenResponse, build_response, parse_envelope, parse_request
from gateway.errors import ConnectorError
from gateway.model import ConnectorPending, Issued
from tests.ces_fixtures import FakeCES, MemoryJournal, _password, _run, ces, connector, plan  # noqa: F401
from tests.wstep_helpers import VECTORS


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
