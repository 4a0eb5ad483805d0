"""Webhooks end to end: the real app with its lifecycle, the real service, a real aiohttp
receiver on loopback that checks every signature (tests/webhook_helpers.py).

Every event arrives with its data (issued, pending, denied, revoked, due), once; a restart
with the receiver down loses and duplicates nothing; the secret appears in no log line."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.model import EnrollmentRequest, Issued, Pending, RevocationReason, serial_hex
from gateway.server.wiring import Components
from gateway.service import local_requester
from gateway.store import SQLStore, default_sqlite_url, open_store
from gateway.webhooks.tables import webhook_outbox
from tests.helpers import certgate, make_csr
from tests.webhook_helpers import (
    SECRET,
    SECRET_ENV,
    Receiver,
    eventually,
    running,
    webhook_config,
)

ENV = {SECRET_ENV: SECRET}


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def _request(txn: str, template: str = "tls-server", host: str = "www.example.test"):
    return EnrollmentRequest(
        csr=make_csr(cn=host, dns=(host,)),
        template=template,
        requester=local_requester("alice"),
        transaction_id=txn,
    )


async def _issue(c: Components, txn: str, host: str = "www.example.test") -> str:
    outcome = await c.service.enroll(_request(txn, host=host))
    assert isinstance(outcome, Issued)
    return serial_hex(outcome.certificate.serial_number)


async def _outbox_states(c: Components | SQLStore) -> list[tuple[str, str, int]]:
    def body(conn: sa.Connection) -> list[tuple[str, str, int]]:
        o = webhook_outbox.c
        return list(conn.execute(sa.select(o.event, o.state, o.attempts)).tuples())

    store = c if isinstance(c, SQLStore) else c.store
    return await store.read(body)


def _successor_template(tmp: Path) -> None:
    """tls-server-v2 supersedes tls-server: every tls-server certificate is due at once."""
    text = (tmp / "templates" / "tls-server.toml").read_text()
    text = text.replace('name = "tls-server"', 'name = "tls-server-v2"')
    text = text.replace("supersedes = []", 'supersedes = ["tls-server"]')
    text = text.replace(
        'oid = "2.25.21039693033669311461624634354199158528"',
        'oid = "2.25.21039693033669311461624634354199158529"',
    )
    (tmp / "templates" / "tls-server-v2.toml").write_text(text)


async def test_every_event_arrives_once_with_its_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = Receiver()
    await receiver.start()
    cfg = webhook_config(tmp_path, receiver.url)
    try:
        async with running(cfg) as c:
            issued = await _issue(c, "t-issued")
            pending = await c.service.enroll(_request("t-pending", "approval-required"))
            assert isinstance(pending, Pending)
            request_id = pending.request_id
            await c.service.deny(request_id, "bob", "not on the list")
            revoked = await _issue(c, "t-revoked", host="old.example.test")
            await c.service.revoke(revoked, RevocationReason.KEY_COMPROMISE, "bob")
            await receiver.wait_for(lambda r: len(r.received) == 5)
        _successor_template(tmp_path)
        async with running(cfg):  # a restart with a successor template: issued is due
            await receiver.wait_for(lambda r: len(r.of_type("certificate.due")) == 1)
    finally:
        await receiver.stop()
    assert receiver.bad_signatures == 0
    ids = [r.id for r in receiver.received]
    assert len(ids) == len(set(ids)) == 6
    by_type = {r.payload["type"]: r.payload for r in receiver.received}
    for r in receiver.received:
        assert r.payload["id"] == r.id and r.payload["timestamp"].endswith("Z")

    # deliveries are concurrent: no order between events is promised
    issued_events = {
        r.payload["data"]["serial"]: r.payload for r in receiver.of_type("certificate.issued")
    }
    assert set(issued_events) == {issued, revoked}
    first_issued = issued_events[issued]
    assert first_issued["data"]["serial"] == issued
    assert first_issued["data"]["subject"] == "CN=www.example.test"
    assert first_issued["data"]["template"] == "tls-server"
    assert first_issued["data"]["protocol"] == "cli"

    assert by_type["request.pending"]["data"] == {
        "request_id": request_id,
        "subject": "CN=www.example.test",
        "template": "approval-required",
        "protocol": "cli",
        "requester": "alice",
        "reason": "approval",
    }
    denied = by_type["request.denied"]["data"]
    assert denied["request_id"] == request_id and denied["rule"] == "manager"
    assert "not on the list" in denied["reason"]
    revoked_data = by_type["certificate.revoked"]["data"]
    assert (revoked_data["serial"], revoked_data["reason"]) == (revoked, "key_compromise")
    assert revoked_data["subject"] == "CN=old.example.test"
    due = by_type["certificate.due"]["data"]
    assert (due["serial"], due["reason"], due["template"]) == (
        issued,
        "template superseded",
        "tls-server",
    )
    # nothing secret in a body or a log line
    for r in receiver.received:
        assert b"csr" not in r.body.lower() and b"challenge" not in r.body.lower()
    assert SECRET not in caplog.text and SECRET.removeprefix("whsec_") not in caplog.text


async def test_a_due_certificate_is_announced_once_across_scans(tmp_path: Path) -> None:
    receiver = Receiver()
    await receiver.start()
    cfg = webhook_config(tmp_path, receiver.url, events=("certificate.due",))
    try:
        async with running(cfg) as c:
            await _issue(c, "t-due")
        _successor_template(tmp_path)
        for _ in range(3):  # each start scans the inventory (and prunes the outbox) at once
            async with running(cfg) as c:
                await receiver.wait_for(lambda r: len(r.received) == 1)

                async def delivered_once(c: Components = c) -> bool:
                    return await _outbox_states(c) == [("certificate.due", "delivered", 1)]

                await eventually(delivered_once)
    finally:
        await receiver.stop()
    assert len(receiver.received) == 1


async def test_a_restart_with_the_receiver_down_loses_and_duplicates_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = Receiver()  # not started: its port refuses connections
    cfg = webhook_config(tmp_path, receiver.url, events=("certificate.issued",))
    serials: list[str] = []
    try:
        async with running(cfg) as c:
            for n in range(8):
                serials.append(await _issue(c, f"t-{n}", host=f"h{n}.example.test"))

            async def tried_all() -> bool:
                states = await _outbox_states(c)
                return len(states) == 8 and all(a >= 1 for _, _, a in states)

            await eventually(tried_all)  # the gateway tried each at least once, and failed
            # stopped mid-stream: the receiver is down, every row is pending
            assert {s for _, s, _ in await _outbox_states(c)} == {"pending"}
        # the operator sees them waiting (no secret, no URL query)
        listed = certgate("webhooks", "list", "-c", str(cfg), "--json", env=ENV, check=True)
        (hook,) = json.loads(listed.stdout)
        assert (hook["name"], hook["pending"], hook["delivered"]) == ("hook", 8, 0)
        waiting = certgate("webhooks", "pending", "-c", str(cfg), env=ENV, check=True)
        assert waiting.stdout.count("certificate.issued") == 8
        assert "connection failed" in waiting.stdout and SECRET not in waiting.stdout
        await receiver.start()
        async with running(cfg) as c:
            serials.append(await _issue(c, "t-after", host="after.example.test"))
            await receiver.wait_for(lambda r: len(r.received) >= 9)

            async def all_delivered() -> bool:  # nothing is left to send
                return [s for _, s, _ in await _outbox_states(c)] == ["delivered"] * 9

            await eventually(all_delivered)
    finally:
        await receiver.stop()
    got = [r.payload["data"]["serial"] for r in receiver.received]
    assert sorted(got) == sorted(serials)  # each once, none lost
    assert receiver.bad_signatures == 0
    assert SECRET not in caplog.text
    assert "webhook delivery failed; will retry" in caplog.text


async def test_a_delivery_in_flight_at_shutdown_completes_and_is_recorded(tmp_path: Path) -> None:
    receiver = Receiver(delay=0.5)  # still answering when the gateway is told to stop
    await receiver.start()
    cfg = webhook_config(tmp_path, receiver.url, events=("certificate.issued",))
    try:
        async with running(cfg) as c:
            await _issue(c, "t-slow")
            await asyncio.wait_for(receiver.answering.wait(), 20)
        store = open_store(default_sqlite_url(tmp_path / "data"))
        try:
            states = await _outbox_states(store)
        finally:
            await store.close()
    finally:
        await receiver.stop()
    assert states == [("certificate.issued", "delivered", 1)]
    assert len(receiver.received) == 1


async def test_a_slow_receiver_does_not_hold_up_another(tmp_path: Path) -> None:
    slow, fast = Receiver(delay=3), Receiver()
    await slow.start()
    await fast.start()
    other = f"""
[webhooks.other]
url = "{fast.url}"
secret = "env:{SECRET_ENV}"
events = ["certificate.issued"]
"""
    cfg = webhook_config(tmp_path, slow.url, events=("certificate.issued",), extra=other)
    try:
        async with running(cfg) as c:
            await _issue(c, "t-first")
            await asyncio.wait_for(slow.answering.wait(), 20)
            await _issue(c, "t-second")  # queued while the slow receiver's answer is pending
            await fast.wait_for(lambda r: len(r.received) == 2)
            assert not slow.received  # still answering the first
            await slow.wait_for(lambda r: len(r.received) == 2)
    finally:
        await slow.stop()
        await fast.stop()
    assert [r.payload["data"] for r in fast.received] == [r.payload["data"] for r in slow.received]
    assert {r.id for r in fast.received}.isdisjoint(r.id for r in slow.received)
