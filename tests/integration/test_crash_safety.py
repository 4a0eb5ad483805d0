"""A connector that kills the process after the request is recorded and before the outcome is
stored: after a restart the request is consistent and retrying issues at most one certificate."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import certgate, csr_pem, make_csr, write_config

CRASHING = """
[testing]
enabled = true
crash_after_ca_submit = true
"""


def test_crash_between_ca_and_store_then_retry_issues_exactly_one(tmp_path: Path) -> None:
    crash_dir, ok_dir = tmp_path / "a", tmp_path / "b"
    crash_dir.mkdir()
    ok_dir.mkdir()
    crashing = write_config(crash_dir, CRASHING)
    normal = write_config(ok_dir)
    # Both configurations share one data directory: the same gateway restarted without the fault.
    normal.write_text(normal.read_text().replace(str(ok_dir / "data"), str(crash_dir / "data")))
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

    crashed = certgate(*args, "-c", str(crashing), env={"CERTGATE_TESTING": "1"})
    assert crashed.returncode == 70, crashed.stderr  # os._exit in the fault hook

    requests = json.loads(
        certgate("requests", "list", "-c", str(normal), "--json", check=True).stdout
    )
    assert len(requests) == 1 and requests[0]["state"] == "received"
    assert json.loads(certgate("certs", "list", "-c", str(normal), "--json").stdout) == []

    first = certgate(*args, "-c", str(normal))
    assert first.returncode == 0, first.stderr
    again = certgate(*args, "-c", str(normal))
    assert again.returncode == 0, again.stderr
    assert json.loads(first.stdout)["serial"] == json.loads(again.stdout)["serial"]
    certs = json.loads(certgate("certs", "list", "-c", str(normal), "--json").stdout)
    assert len(certs) == 1 and certs[0]["serial"] == json.loads(first.stdout)["serial"]
    shown = json.loads(
        certgate("requests", "show", requests[0]["id"], "-c", str(normal), "--json").stdout
    )
    assert shown["state"] == "issued"


def test_testing_switches_are_refused_without_the_environment_flag(tmp_path: Path) -> None:
    crashing = write_config(tmp_path, CRASHING)
    proc = certgate("templates", "list", "-c", str(crashing), env={"CERTGATE_TESTING": ""})
    assert proc.returncode == 2
    assert "CERTGATE_TESTING" in proc.stderr
