"""Crash safety: the process dies after the CA acted and before the outcome is stored.

The crash is injected by a test-only connector wrapping the real one
(:class:`tests.fake_connectors.CrashAfterSubmit`, entry points ``crashing-local`` and
``crashing-journaled-local``); product code has no fault hook.

Two issuance paths exist (gateway.ports.InProcessSigner):
- the local CA signs in memory and stores request + certificate in one transaction, so a
  crash before the commit leaves nothing, and a retry issues the one certificate;
- a connector to a CA with its own state is called only after the request is recorded; a
  crash after it issued leaves the request ``received``, and a retry returns the certificate
  the CA already issued (its journal), never a second one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fake_connectors import register_entry_points
from tests.helpers import REPO, certgate, csr_pem, make_csr, write_config

TESTING_SWITCH = """
[testing]
enabled = true
acme_always_valid = true
"""


def _cli(*args: str, env: dict[str, str], crash: bool = False) -> subprocess.CompletedProcess[str]:
    """The CLI, with the test connectors' entry points found on its PYTHONPATH: as a real
    process where it ``crash``es (the crash ends it, never the test's interpreter), else
    in-process (:func:`tests.helpers.certgate`)."""
    return certgate(*args, env=env, process=crash, timeout=120)


def _setup(tmp_path: Path, connector_type: str) -> tuple[Path, Path, list[str], dict[str, str]]:
    crash_dir, ok_dir = tmp_path / "a", tmp_path / "b"
    crash_dir.mkdir()
    ok_dir.mkdir()
    crashing = write_config(crash_dir)
    normal = write_config(ok_dir)
    # Both configurations share one data directory: the same gateway restarted without the fault.
    normal.write_text(normal.read_text().replace(str(ok_dir / "data"), str(crash_dir / "data")))
    for cfg, kind in ((crashing, f"crashing-{connector_type}"), (normal, connector_type)):
        cfg.write_text(cfg.read_text().replace('type = "local"', f'type = "{kind}"'))
    csr = tmp_path / "req.csr"
    csr.write_bytes(csr_pem(make_csr(cn="www.example.test", dns=("www.example.test",))))
    args = [
        "enroll",
        "--json",
        "--template",
        "tls-server",
        "--csr",
        str(csr),
        "--transaction-id",
        "txn-crash-1",
    ]
    eps = register_entry_points(tmp_path / "eps")
    env = {"PYTHONPATH": os.pathsep.join([str(eps), str(REPO)])}
    init = _cli("init", "-c", str(normal), env=env)
    assert init.returncode == 0, init.stderr
    return crashing, normal, args, env


def _retry_issues_exactly_one(normal: Path, args: list[str], env: dict[str, str]) -> None:
    first = _cli(*args, "-c", str(normal), env=env)
    assert first.returncode == 0, first.stderr
    again = _cli(*args, "-c", str(normal), env=env)
    assert again.returncode == 0, again.stderr
    serial = json.loads(first.stdout)["serial"]
    assert json.loads(again.stdout)["serial"] == serial
    certs = json.loads(_cli("certs", "list", "-c", str(normal), "--json", env=env).stdout)
    assert [c["serial"] for c in certs] == [serial]
    requests = json.loads(_cli("requests", "list", "-c", str(normal), "--json", env=env).stdout)
    assert len(requests) == 1 and requests[0]["state"] == "issued"


def test_local_ca_crash_before_commit_leaves_nothing_and_retry_issues_one(
    tmp_path: Path,
) -> None:
    crashing, normal, args, env = _setup(tmp_path, "local")
    crashed = _cli(*args, "-c", str(crashing), env=env, crash=True)
    assert crashed.returncode == 70, crashed.stderr  # os._exit in CrashAfterSign
    assert json.loads(_cli("requests", "list", "-c", str(normal), "--json", env=env).stdout) == []
    assert json.loads(_cli("certs", "list", "-c", str(normal), "--json", env=env).stdout) == []
    _retry_issues_exactly_one(normal, args, env)


def test_connector_crash_after_issuing_then_retry_returns_the_same_certificate(
    tmp_path: Path,
) -> None:
    crashing, normal, args, env = _setup(tmp_path, "journaled-local")
    crashed = _cli(*args, "-c", str(crashing), env=env, crash=True)
    assert crashed.returncode == 70, crashed.stderr
    requests = json.loads(_cli("requests", "list", "-c", str(normal), "--json", env=env).stdout)
    assert len(requests) == 1 and requests[0]["state"] == "received"
    assert json.loads(_cli("certs", "list", "-c", str(normal), "--json", env=env).stdout) == []
    _retry_issues_exactly_one(normal, args, env)


def test_poller_recovers_a_request_left_received(tmp_path: Path) -> None:
    """Without any client retry, the poller resubmits a request a crash left ``received``."""
    crashing, normal, args, env = _setup(tmp_path, "journaled-local")
    assert _cli(*args, "-c", str(crashing), env=env, crash=True).returncode == 70
    import asyncio

    from gateway.config import load_config
    from gateway.server.wiring import build

    async def poll() -> None:
        import importlib

        sys.path.insert(0, str(tmp_path / "eps"))
        importlib.invalidate_caches()
        components = await build(load_config(normal))
        try:
            await asyncio.sleep(2.1)  # the lease in write_config is 2 s
            assert await components.service.poll_pending_once(lease_seconds=2) == 1
        finally:
            await components.close()
            sys.path.remove(str(tmp_path / "eps"))

    asyncio.run(poll())
    requests = json.loads(_cli("requests", "list", "-c", str(normal), "--json", env=env).stdout)
    assert requests[0]["state"] == "issued"
    assert len(json.loads(_cli("certs", "list", "-c", str(normal), "--json", env=env).stdout)) == 1


def test_testing_switches_are_refused_without_the_environment_flag(tmp_path: Path) -> None:
    crashing = write_config(tmp_path, TESTING_SWITCH)
    proc = certgate("templates", "list", "-c", str(crashing), env={"CERTGATE_TESTING": ""})
    assert proc.returncode == 2
    assert "CERTGATE_TESTING" in proc.stderr
