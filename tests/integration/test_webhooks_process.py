"""A real ``certgate serve`` process delivers the events an operator causes with the CLI on
the gateway host (another process, the same database): the serving process's fan-out reads
them from the audit trail. SIGTERM while an answer is in flight: it is recorded delivered."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from tests.gateway_process import gateway_process
from tests.helpers import certgate, csr_pem, make_csr
from tests.webhook_helpers import SECRET, SECRET_ENV, Receiver, webhook_config

ENV = {SECRET_ENV: SECRET}


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


async def test_cli_approval_is_announced_by_the_serving_process(tmp_path: Path) -> None:
    receiver = Receiver(delay=0.5)
    await receiver.start()
    cfg = webhook_config(tmp_path, receiver.url, events=("request.pending", "certificate.issued"))
    csr = tmp_path / "device.csr"
    csr.write_bytes(csr_pem(make_csr(cn="device-0001")))
    try:
        with gateway_process(cfg, env=ENV) as gateway:
            enrolled = certgate(
                "enroll", "-c", str(cfg), "--json", "--template", "approval-required",
                "--csr", str(csr), env=ENV,
            )  # fmt: skip
            assert enrolled.returncode == 3, enrolled.stderr  # pending
            request_id = json.loads(enrolled.stdout)["request_id"]
            await receiver.wait_for(lambda r: len(r.received) == 1)
            approved = certgate("requests", "approve", request_id, "-c", str(cfg), env=ENV)
            assert approved.returncode == 0, approved.stderr
            # SIGTERM while the receiver is still answering the issuance; this loop keeps
            # serving the receiver while the process shuts down
            receiver.answering.clear()
            await receiver.wait_for(lambda r: r.answering.is_set())
            gateway.proc.send_signal(signal.SIGTERM)
            for _ in range(1500):
                if gateway.proc.poll() is not None:
                    break
                await asyncio.sleep(0.01)
            assert gateway.proc.returncode == 0
        log = gateway.output()
        listed = certgate("webhooks", "list", "-c", str(cfg), "--json", env=ENV, check=True)
    finally:
        await receiver.stop()
    (hook,) = json.loads(listed.stdout)
    assert (hook["delivered"], hook["pending"]) == (2, 0)
    types = [r.payload["type"] for r in receiver.received]
    assert types == ["request.pending", "certificate.issued"]
    assert {r.payload["data"]["request_id"] for r in receiver.received} == {request_id}
    assert receiver.bad_signatures == 0
    assert "Traceback" not in log and SECRET not in log
