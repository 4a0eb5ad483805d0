# ruff: noqa: F811  (pytest fixtures imported from tests.interop.cepces_gateway)
"""openSUSE cepces v0.3.17's ``cepces-submit`` under a private certmonger daemon, against a real
``certgate serve`` (issue #13): the request reaches MONITORING, and a request held for
approval is picked up once a manager approves it.

Runs only when ``CEPCES_SRC`` points at a cepces checkout, as tests/interop/test_wstep_cepces.py
(see its docstring to reproduce)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509

from tests.helpers import require_tool
from tests.interop.cepces_gateway import (
    Gateway,
    _pending,
    gateway,  # noqa: F401
)
from tests.interop.test_scep_certmonger import Certmonger, _status, _wait_status

pytestmark = pytest.mark.interop


# certmonger asks a new CA's helper for these on ``getcert add-ca``; each answer that changes
# the CA's data restarts the CA's requests, and a SUBMIT already running is abandoned (its
# cepces-submit still reaches the gateway). Seen here: ``getcert request`` right after
# ``add-ca`` ran SUBMIT five times, and the gateway issued five certificates for one request.
# So the scripts wait until the helper has answered them all (operations.log, written by the
# wrapper) before they request.
_CA_DATA = (
    "IDENTIFY",
    "FETCH-ROOTS",
    "GET-SUPPORTED-TEMPLATES",
    "GET-DEFAULT-TEMPLATE",
    "GET-NEW-REQUEST-REQUIREMENTS",
    "GET-RENEW-REQUEST-REQUIREMENTS",
)


def _start_certmonger(gateway: Gateway, name: str, body: str) -> tuple[Certmonger, Path, Path]:
    """A private certmonger daemon (see test_scep_certmonger) with cepces as CA ``cepces``
    (``getcert add-ca -c cepces -e <cepces-submit>``), running ``body`` once the CA is set up.
    Returns the session, the client's working directory and the daemon's output file."""
    require_tool("certmonger")
    require_tool("getcert")
    workdir = gateway.client(name, "UsernamePassword")
    helper = gateway.cepces.wrapper(workdir)
    cm = Certmonger(gateway.work / f"cm-{name}", "unused")
    pattern = "|".join(_CA_DATA)
    script = cm.home / "script.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"export HOME={cm.env['HOME']}\n"
        f"getcert add-ca -s -c cepces -e '{helper}' || exit 9\n"
        f"for i in $(seq 1 300); do n=$(grep -c -E '^({pattern}) ' {workdir}/operations.log); "
        f'[ "${{n:-0}}" -ge {len(_CA_DATA)} ] && break; sleep 0.2; done\n'
        "sleep 2\n" + body
    )
    script.chmod(0o700)
    return cm, workdir, script


def _run_script(cm: Certmonger, script: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [cm.dbus, "--", cm.exe, "-s", "-n", "-c", str(script)],
        env=cm.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: Certmonger.stop ends the bus too
    )


def _submits(workdir: Path) -> list[str]:
    lines = (workdir / "operations.log").read_text().splitlines()
    return [line for line in lines if line.startswith("SUBMIT ")]


def test_certmonger_with_cepces_reaches_monitoring(gateway: Gateway) -> None:
    out = gateway.work / "cm-out"
    out.mkdir()
    cm, workdir, script = _start_certmonger(
        gateway,
        "certmonger",
        f"getcert request -s -w --wait-timeout=60 -c cepces -T device -f {out}/cert.pem "
        f"-k {out}/key.pem -N CN=cepces-certmonger -I cm >/dev/null\n"
        "getcert list -s -i cm\n",
    )
    proc = _run_script(cm, script)
    try:
        log = Certmonger.finish(proc, 120)
    finally:
        Certmonger.stop(proc)
    assert _status(log, "cm") == "MONITORING", log
    cert = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=cepces-certmonger"
    cert.verify_directly_issued_by(gateway.chain()[0])
    # certmonger learned the template from cepces and put it into its CSR.
    assert "profile: device" in log, log
    assert _submits(workdir) == ["SUBMIT  -> 0"], (workdir / "operations.log").read_text()


def test_certmonger_with_cepces_picks_up_an_approved_request(gateway: Gateway) -> None:
    """The approval flow under certmonger: cepces answers WAITMORE with its cookie, certmonger
    polls (POLL with CERTMONGER_CA_COOKIE) after the printed delay, and reaches MONITORING once
    an operator approves; no second request is made."""
    out = gateway.work / "cm-approval-out"
    out.mkdir()
    pending, approved = out / "pending", out / "approved"
    before = {r["id"] for r in _pending(gateway)}
    cm, workdir, script = _start_certmonger(
        gateway,
        "certmonger-approval",
        f"getcert request -s -c cepces -T approval-required -f {out}/cert.pem "
        f"-k {out}/key.pem -N CN=cepces-cm-approval -I pend >/dev/null\n"
        + _wait_status("pend", "CA_WORKING")
        + f"getcert list -s -i pend > {pending}.tmp; mv {pending}.tmp {pending}\n"
        f"for i in $(seq 1 300); do [ -e {approved} ] && break; sleep 0.2; done\n"
        + _wait_status("pend", "MONITORING")
        + _wait_status("pend", "MONITORING")
        + "getcert list -s -i pend\n",
    )
    proc = _run_script(cm, script)
    try:
        deadline = time.monotonic() + 90
        while not pending.exists():
            assert proc.poll() is None, Certmonger.finish(proc, 5)
            assert time.monotonic() < deadline, "certmonger never reached CA_WORKING"
            time.sleep(0.2)
        assert _status(pending.read_text(), "pend") == "CA_WORKING", pending.read_text()
        new = [r for r in _pending(gateway) if r["id"] not in before]
        assert len(new) == 1, new
        gateway.cli("requests", "approve", str(new[0]["id"]))
        approved.touch()
        log = Certmonger.finish(proc, 120)
    finally:
        Certmonger.stop(proc)
    assert _status(log, "pend") == "MONITORING", log
    cert = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=cepces-cm-approval"
    operations = (workdir / "operations.log").read_text()
    assert _submits(workdir) == ["SUBMIT  -> 5"], operations
    polls = [line for line in operations.splitlines() if line.startswith("POLL ")]
    assert (
        polls
        and polls[-1].endswith(" -> 0")
        and all(re.fullmatch(r"POLL \d+,https://\S+/wstep/CES -> [05]", line) for line in polls)
    ), operations
