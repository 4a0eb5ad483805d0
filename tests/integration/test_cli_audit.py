"""``certgate audit list|show`` (issue #15 item 6) on SQLite and on PostgreSQL, in-process
through ``main(argv)``: a gateway issues, queues, approves, denies and revokes through the CLI,
then the audit trail is read back with each filter."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.cli import EXIT_ERROR, EXIT_OK, EXIT_PENDING, main
from tests.helpers import csr_pem, make_csr, write_config

PG_ADMIN_DSN = os.environ.get(
    "CERTGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
FIELDS = {"id", "at", "event", "actor", "request_id", "serial", "detail"}


async def _pg_admin(sql: str) -> None:
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL at {PG_ADMIN_DSN} unreachable ({type(exc).__name__})"
        if os.environ.get("CERTGATE_REQUIRE_PEERS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == EXIT_OK, err or out
    return json.loads(out)


class Gateway:
    """A gateway with a known history: S1 issued then revoked, R2 approved (S2), R3 denied."""

    def __init__(self, cfg: Path) -> None:
        self.cfg = cfg
        self.serial1 = self.serial2 = self.request1 = self.request2 = self.request3 = ""


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp(request.param)
    extra, database = "", None
    if request.param == "postgresql":
        database = f"certgate_audit_{secrets.token_hex(6)}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{database}"'))
        server = PG_ADMIN_DSN.removeprefix("postgresql://").rsplit("/", 1)[0]
        extra = f'[store]\nurl = "postgresql+asyncpg://{server}/{database}"\n'
    try:
        yield _history(Gateway(write_config(tmp, extra)), tmp)
    finally:
        if database is not None:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def _main_json(*argv: str) -> tuple[int, Any]:
    """``main(argv + --json)`` and what it printed, outside a test's capsys (module fixture)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main([*argv, "--json"])
    return code, json.loads(buffer.getvalue())


def _history(gw: Gateway, tmp: Path) -> Gateway:
    cfg = ("-c", str(gw.cfg))
    assert _main_json("init", *cfg)[0] == EXIT_OK
    csr = tmp / "web.csr"
    csr.write_bytes(csr_pem(make_csr(dns=("www.example.test",))))
    enroll = ("enroll", *cfg, "--csr", str(csr), "--template")
    code, issued = _main_json(*enroll, "tls-server")
    assert code == EXIT_OK
    gw.serial1, gw.request1 = issued["serial"], issued["request_id"]
    for attr in ("request2", "request3"):
        code, pending = _main_json(*enroll, "approval-required")
        assert code == EXIT_PENDING
        setattr(gw, attr, pending["request_id"])
    code, approved = _main_json("requests", "approve", gw.request2, *cfg)
    assert code == EXIT_OK
    gw.serial2 = approved["serial"]
    assert _main_json("requests", "deny", gw.request3, "--reason", "not ours", *cfg)[0] == 0
    assert _main_json("certs", "revoke", gw.serial1, "--reason", "superseded", *cfg)[0] == 0
    return gw


def test_list_gives_every_event_with_every_field_oldest_first(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    events = run_json(capsys, "audit", "list", "-c", str(gateway.cfg))
    assert all(set(e) == FIELDS for e in events)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    names = [e["event"] for e in events]
    for expected in ("request.received", "certificate.issued", "request.pending",
                     "request.approved", "request.denied", "certificate.revoked"):  # fmt: skip
        assert expected in names
    approved = next(e for e in events if e["event"] == "request.approved")
    assert approved["request_id"] == gateway.request2 and approved["actor"].startswith("cli:")
    denied = next(e for e in events if e["event"] == "request.denied")
    assert denied["request_id"] == gateway.request3 and denied["detail"]
    datetime.fromisoformat(events[0]["at"])  # ISO 8601, with its offset


def test_type_matches_an_event_or_a_dotted_prefix(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ("-c", str(gateway.cfg))
    requests = run_json(capsys, "audit", "list", "--type", "request", *cfg)
    assert requests and all(e["event"].startswith("request.") for e in requests)
    issued = run_json(capsys, "audit", "list", "--type", "certificate.issued", *cfg)
    assert {e["serial"] for e in issued} == {gateway.serial1, gateway.serial2}
    both = run_json(
        capsys, "audit", "list", "--type", "certificate.revoked", "--type", "request.denied", *cfg
    )
    assert sorted(e["event"] for e in both) == ["certificate.revoked", "request.denied"]
    assert run_json(capsys, "audit", "list", "--type", "certificate.iss", *cfg) == []


def test_serial_and_request_filters(gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ("-c", str(gateway.cfg))
    spelled = ":".join(f"00{gateway.serial1}".upper()[i : i + 2] for i in range(0, 34, 2))
    by_serial = run_json(capsys, "audit", "list", "--serial", spelled.rstrip(":"), *cfg)
    events = [e["event"] for e in by_serial]
    assert events[0] == "certificate.issued" and "certificate.revoked" in events, events
    assert {e["serial"] for e in by_serial} == {gateway.serial1}
    by_request = run_json(capsys, "audit", "list", "--request", gateway.request2, *cfg)
    assert {e["request_id"] for e in by_request} == {gateway.request2}
    assert [e["event"] for e in by_request][:2] == ["request.received", "request.pending"]
    assert "request.approved" in [e["event"] for e in by_request]


def test_since_takes_a_duration_or_a_timestamp(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ("-c", str(gateway.cfg))
    everything = run_json(capsys, "audit", "list", *cfg)
    assert run_json(capsys, "audit", "list", "--since", "1h", *cfg) == everything
    last = datetime.fromisoformat(everything[-1]["at"])
    later = (last + timedelta(seconds=1)).isoformat()
    assert run_json(capsys, "audit", "list", "--since", later, *cfg) == []
    naive_utc = last.replace(tzinfo=None).isoformat()  # UTC unless it names its offset
    assert run_json(capsys, "audit", "list", "--since", naive_utc, *cfg)[-1] == everything[-1]
    code, _, err = run(capsys, "audit", "list", "--since", "yesterday", *cfg)
    assert code == EXIT_ERROR and "--since" in err and len(err.strip().splitlines()) == 1


def test_limit_keeps_the_newest(gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ("-c", str(gateway.cfg))
    everything = run_json(capsys, "audit", "list", *cfg)
    assert run_json(capsys, "audit", "list", "--limit", "2", *cfg) == everything[-2:]


def test_table_has_headers_and_show_has_every_field(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ("-c", str(gateway.cfg))
    code, out, _ = run(capsys, "audit", "list", "--type", "certificate.revoked", *cfg)
    lines = out.splitlines()
    assert code == EXIT_OK and lines[0].split() == [
        "ID", "AT", "EVENT", "ACTOR", "REQUEST", "SERIAL", "DETAIL"
    ]  # fmt: skip
    assert set(lines[1]) <= {"-", " "} and len(lines) == 3
    event_id = lines[2].split()[0]
    shown = run_json(capsys, "audit", "show", event_id, *cfg)
    assert set(shown) == FIELDS and shown["serial"] == gateway.serial1
    assert shown["detail"].get("reason") or shown["detail"]
    code, out, _ = run(capsys, "audit", "show", event_id, *cfg)
    assert code == EXIT_OK and f"serial      {gateway.serial1}" in out


def test_show_of_an_unknown_event(gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ("-c", str(gateway.cfg))
    code, out, err = run(capsys, "audit", "show", "999999", *cfg)
    assert code == EXIT_ERROR and out == "" and "no audit event 999999" in err
    code, out, err = run(capsys, "audit", "show", "999999", "--json", *cfg)
    assert code == EXIT_ERROR and err == ""
    assert json.loads(out)["error"]["message"].endswith("no audit event 999999")
