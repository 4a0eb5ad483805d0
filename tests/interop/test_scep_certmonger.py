"""certmonger 0.79 (the SCEP client of RHEL/Fedora/FreeIPA hosts) against ``certgate serve``.

certmonger verifies every CertRep with OpenSSL's PKCS#7 code and tracks each request in a state
machine: MONITORING (issued), CA_REJECTED (a CertRep FAILURE), CA_WORKING (PENDING),
CA_UNREACHABLE (anything it cannot verify, which is what FAILURE and PENDING without content
used to give). Each test runs a private daemon on its own D-Bus session bus with every state
directory in a temp dir (``dbus-run-session -- certmonger -s -n -c SCRIPT``); the daemon scrubs
the environment of the commands it runs, so the script has its values baked in.

Polling: certmonger's scep-submit exits 1 on PENDING, without a retry delay, so the daemon
schedules its next check of the request in CM_DELAY_CA_POLL = 604800 s (its debug log says
"Will revisit ... in 604800 seconds"); neither certmonger.conf nor a daemon flag changes that.
``getcert refresh`` is certmonger's documented way to run that scheduled check now: it keeps the
key, CSR and transactionID (unlike ``getcert resubmit``), so the gateway sees the same
transaction again (RFC 8894 §3.3.3, §5.2) and answers from the approved request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from gateway.cli.main import main as certgate_main
from tests.helpers import require_tool
from tests.scep_helpers import STATIC_PASSWORD, scep_config, serving

pytestmark = pytest.mark.interop

ENDPOINTS = """
[scep.endpoints.devices]
template = "scep-device"
challenge = "static"
challenge_password = "file:static.txt"

[scep.endpoints.approval]
template = "scep-approval"
challenge = "none"
"""

_STATE_DIRS = {
    "CERTMONGER_REQUESTS_DIR": "requests",
    "CERTMONGER_CAS_DIR": "cas",
    "CERTMONGER_LOCAL_CA_DIR": "local",
    "CERTMONGER_TMPDIR": "tmp",
    "CERTMONGER_CONFIG_DIR": "config",
}


class Certmonger:
    """A private certmonger daemon per script, touching nothing outside ``home``."""

    def __init__(self, home: Path, url: str) -> None:
        self.home, self.url = home, url
        self.exe = require_tool("certmonger")
        require_tool("getcert")
        self.dbus = require_tool("dbus-run-session")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home / "home"),
            "CERTMONGER_SYSTEM_LOCK_FILE": str(home / "lock"),
        }
        for var, sub in _STATE_DIRS.items():
            self.env[var] = str(home / sub)
        for path in (*_STATE_DIRS.values(), "home", "out"):
            (home / path).mkdir(parents=True, exist_ok=True)

    def start(self, body: str) -> subprocess.Popen[str]:
        """Run ``body`` (bash) against a fresh daemon that knows the gateway as CA ``gw``."""
        script = self.home / "script.sh"
        script.write_text(
            "#!/bin/bash\n"
            f"export HOME={self.env['HOME']}\n"
            f"getcert add-scep-ca -s -c gw -u {self.url} >/dev/null || exit 9\n" + body
        )
        script.chmod(0o700)
        return subprocess.Popen(
            [self.dbus, "--", self.exe, "-s", "-n", "-c", str(script)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: stop() ends the bus daemon too
        )

    @staticmethod
    def finish(proc: subprocess.Popen[str], timeout: float) -> str:
        """The script's output once it exits; on timeout the whole session is killed (the
        daemon and dbus-daemon would otherwise keep the output pipe open)."""
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            Certmonger.stop(proc)
            raise AssertionError("certmonger script timed out") from None
        return _visible(out)

    @staticmethod
    def stop(proc: subprocess.Popen[str]) -> None:
        """Kill the session this test started (its own process group) and reap it."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def run(self, body: str, timeout: float = 40) -> str:
        proc = self.start(body)
        try:
            out = self.finish(proc, timeout)
        finally:
            self.stop(proc)
        assert proc.returncode == 0, out
        return out


def _visible(log: str) -> str:
    """The daemon's output without its per-write noise."""
    return "\n".join(line for line in log.splitlines() if "Wrote to" not in line)


def _status(listing: str, request_id: str) -> str:
    block = listing.split(f"Request ID '{request_id}':", 1)
    assert len(block) == 2, listing
    for line in block[1].splitlines():
        if line.strip().startswith("status:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(listing)


def _wait_status(request_id: str, status: str) -> str:
    """Bash: wait (up to 20 s) until certmonger reports ``status`` for ``request_id``."""
    return (
        f"for i in $(seq 1 100); do getcert list -s -i {request_id} | "
        f'grep -q "status: {status}" && break; sleep 0.2; done\n'
    )


class Gateway:
    def __init__(self, cfg: Path, port: int, work: Path) -> None:
        self.cfg, self.port, self.work = cfg, port, work

    def url(self, endpoint: str) -> str:
        return f"http://127.0.0.1:{self.port}/scep/{endpoint}"

    def certmonger(self, name: str, endpoint: str) -> Certmonger:
        return Certmonger(self.work / name, self.url(endpoint))

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str) -> str:
        """``certgate ARGS -c CONFIG`` in-process, as an operator would run it beside serve."""
        capsys.readouterr()
        code = certgate_main([*args, "-c", str(self.cfg)])
        out = capsys.readouterr().out
        assert code == 0, out
        return out

    def requests(self, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = json.loads(self.cli(capsys, "requests", "list", "--json"))
        return listed


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    require_tool("certmonger")
    tmp = tmp_path_factory.mktemp("scep-certmonger")
    cfg = scep_config(tmp, ENDPOINTS)
    with serving(cfg) as port:
        yield Gateway(cfg, port, tmp)


def test_certmonger_enrolls_to_monitoring(gateway: Gateway) -> None:
    cm = gateway.certmonger("enroll", "devices")
    out_dir = cm.home / "out"
    log = cm.run(
        f"getcert request -s -w --wait-timeout=30 -c gw -f {out_dir}/cert.pem "
        f"-k {out_dir}/key.pem -N CN=cm-enroll -L {STATIC_PASSWORD} -I enroll >/dev/null\n"
        "getcert list -s -i enroll\n"
    )
    assert _status(log, "enroll") == "MONITORING", log
    cert = x509.load_pem_x509_certificate((out_dir / "cert.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=cm-enroll"
    assert cert.issuer.rfc4514_string() == "CN=certgate Issuing CA"


def test_certmonger_wrong_challenge_is_ca_rejected_not_unreachable(gateway: Gateway) -> None:
    cm = gateway.certmonger("wrong", "devices")
    out_dir = cm.home / "out"
    log = cm.run(
        f"getcert request -s -w --wait-timeout=30 -c gw -f {out_dir}/cert.pem "
        f"-k {out_dir}/key.pem -N CN=cm-wrong -L not-the-password -I wrong >/dev/null\n"
        "getcert list -s -i wrong\n"
    )
    assert _status(log, "wrong") == "CA_REJECTED", log
    # The CertRep FAILURE verified and its failInfo (badRequest) reached the operator.
    assert "ca-error: Transaction either is not permitted" in log
    assert not (out_dir / "cert.pem").exists()


def test_certmonger_picks_up_a_pending_request_after_approval(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    cm = gateway.certmonger("pending", "approval")
    out_dir, pending, approved = cm.home / "out", cm.home / "pending", cm.home / "approved"
    proc = cm.start(
        f"getcert request -s -c gw -f {out_dir}/cert.pem -k {out_dir}/key.pem "
        "-N CN=cm-pending -I pend >/dev/null\n"
        + _wait_status("pend", "CA_WORKING")
        + f"getcert list -s -i pend > {pending}.tmp; mv {pending}.tmp {pending}\n"
        f"for i in $(seq 1 150); do [ -e {approved} ] && break; sleep 0.2; done\n"
        # The daemon's own scheduled check of a CA_WORKING request, run now (see docstring).
        "getcert refresh -s -i pend >/dev/null\n"
        + _wait_status("pend", "MONITORING")
        + "getcert list -s -i pend\n"
    )
    try:
        deadline = time.monotonic() + 30
        while not pending.exists():
            assert proc.poll() is None, Certmonger.finish(proc, 5)
            assert time.monotonic() < deadline, "certmonger never reached CA_WORKING"
            time.sleep(0.2)
        assert _status(pending.read_text(), "pend") == "CA_WORKING", pending.read_text()
        waiting = [r for r in gateway.requests(capsys) if r["state"] == "pending"]
        assert len(waiting) == 1, waiting
        request = waiting[0]
        gateway.cli(capsys, "requests", "approve", request["id"])
        approved.touch()
        log = Certmonger.finish(proc, 40)
    finally:
        Certmonger.stop(proc)
    assert proc.returncode == 0, log
    assert _status(log, "pend") == "MONITORING", log
    cert = x509.load_pem_x509_certificate((out_dir / "cert.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=cm-pending"
    # No second request: certmonger's poll was answered from the approved one.
    mine = [r for r in gateway.requests(capsys) if r["transaction_id"] == request["transaction_id"]]
    assert [(r["id"], r["state"]) for r in mine] == [(request["id"], "issued")]
    assert mine[0]["certificate_serial"] == format(cert.serial_number, "x")
