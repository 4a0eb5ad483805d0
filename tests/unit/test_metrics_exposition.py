"""Metrics without a server: the exposition of scrape-time values, the enrollment events that
count decisions and connector calls, and reading a listener's certificate from its SSLContext.
Counters are per process, so tests compare before and after."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.errors import CAUnavailable, ConnectorError
from gateway.model import (
    ConnectorPending,
    Denied,
    Pending,
    PendingReason,
    Requester,
    RequestKind,
    RequestRecord,
    RequestState,
)
from gateway.observability import events
from gateway.observability.metrics import CertificateExpiry, ScrapeState, activate, exposition
from gateway.observability.scrape import listener_certificate
from tests.pki_helpers import self_signed, valid, write_cert, write_key

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def key(name: str, /, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_scrape_time_values_are_exposed() -> None:
    state = ScrapeState(
        now=NOW,
        pending={("approval", "approval-required"): 3, ("ca", "device"): 1},
        certificates=(
            CertificateExpiry("ca", "local", "issuing", NOW + timedelta(days=10)),
            CertificateExpiry("listener", "est", "server", NOW - timedelta(seconds=30)),
        ),
    )
    got = samples(exposition(state).decode())
    pending = "certgate_pending_requests"
    assert got[key(pending, reason="approval", template="approval-required")] == 3
    assert got[key(pending, reason="ca", template="device")] == 1
    assert got[key("certgate_store_up")] == 1
    expiry = "certgate_certificate_expiry_seconds"
    assert got[key(expiry, kind="ca", name="local", role="issuing")] == 10 * 86400
    assert got[key(expiry, kind="listener", name="est", role="server")] == -30


def test_an_unreadable_store_is_reported_not_guessed() -> None:
    got = samples(exposition(ScrapeState(now=NOW, pending=None)).decode())
    assert got[key("certgate_store_up")] == 0
    assert not any(name == "certgate_pending_requests" for name, _ in got)


def record(template: str = "device") -> RequestRecord:
    return RequestRecord(
        id="req-1",
        protocol="est",
        transaction_id="t-1",
        template=template,
        kind=RequestKind.NEW,
        requester=Requester("est", "alice", "basic"),
        csr_der=b"",
        spki_sha256="00",
        state=RequestState.RECEIVED,
        created_at=NOW,
        updated_at=NOW,
    )


def current() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return samples(exposition(ScrapeState(now=NOW, pending={})).decode())


def test_settled_outcomes_count_by_protocol_template_and_outcome() -> None:
    activate()
    before = current()
    denied = Denied("policy-denied", "no", "san-dns")
    assert events.settled(record("unit-a"), denied) is denied
    events.settled(record("unit-a"), Pending("req-1", 60, PendingReason.APPROVAL))
    events.failed(record("unit-a"), "the CA said no for good")
    after = current()

    def rose(name: str, /, **labels: str) -> float:
        return after.get(key(name, **labels), 0) - before.get(key(name, **labels), 0)

    enrollments = "certgate_enrollments_total"
    for outcome in ("denied", "pending", "failed"):
        assert rose(enrollments, protocol="est", template="unit-a", outcome=outcome) == 1
    assert rose(enrollments, protocol="est", template="unit-a", outcome="issued") == 0
    assert rose("certgate_denials_total", protocol="est", rule="san-dns") == 1


@pytest.mark.parametrize(
    ("raised", "returned", "result"),
    [
        (None, ConnectorPending("ca-7"), "pending"),
        (None, Denied("ca-denied", "no", "ca"), "denied"),
        (None, None, "ok"),
        (CAUnavailable("down", retry_after=5), None, "unavailable"),
        (ConnectorError("broken"), None, "error"),
        (RuntimeError("bug"), None, "error"),
    ],
)
def test_connector_calls_count_by_result(
    raised: Exception | None, returned: object, result: str
) -> None:
    activate()
    before = current()
    with pytest.raises(type(raised)) if raised else _nothing():
        with events.connector_call("unit-ca", "submit") as call:
            if raised:
                raise raised
            if returned is not None:
                call.outcome(returned)
    after = current()
    labels = {"connector": "unit-ca", "operation": "submit"}
    calls = key("certgate_connector_calls_total", **labels, result=result)
    assert after[calls] - before.get(calls, 0) == 1
    timed = key("certgate_connector_call_duration_seconds_count", **labels)
    assert after[timed] - before.get(timed, 0) == 1


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_listener_certificate_is_read_from_its_ssl_context(tmp_path: Path) -> None:
    key_, cert = self_signed("listener.example", **valid(-1, 30))
    for verify in (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(
            write_cert(tmp_path / "c.pem", cert), write_key(tmp_path / "k.pem", key_)
        )
        if verify != ssl.CERT_NONE:
            context.load_verify_locations(tmp_path / "c.pem")
            context.verify_mode = verify
        assert listener_certificate(context) == cert, verify


def test_a_context_without_a_certificate_presents_none() -> None:
    assert listener_certificate(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)) is None
