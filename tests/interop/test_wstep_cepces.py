"""openSUSE cepces v0.3.17 (``cepces-submit``, the CES client Samba and SSSD use for Linux
autoenrollment against AD CS) against a real ``certgate serve`` (issue #13).

Runs only when ``CEPCES_SRC`` points at a cepces checkout (``tests/interop/cepces_setup.sh``
makes one and a venv; ``CEPCES_PYTHON`` is that venv's python); skipped otherwise, even under
CERTGATE_REQUIRE_PEERS=1, because CI cannot install cepces. What it sends is kept as vectors in
``tests/vectors/cepces/`` and replayed in CI by tests/integration/test_wstep_cepces_replay.py.

The gateway: local CA, the wstep front-end on HTTP and on a TLS listener (self-signed server
certificate, cepces' ``cas``), a password account made with ``certgate wstep user add`` and a
client certificate issued by the gateway (``certgate enroll``). cepces-submit is run as
certmonger runs it (operation and data in ``CERTMONGER_*`` variables, exit codes per
cepces/certmonger/core.py), then under a private certmonger daemon.

Reproduce::

    tests/interop/cepces_setup.sh        # or: cepces_setup.sh SOURCE SRC_DIR VENV_DIR
    CEPCES_SRC=~/.cache/certgate/cepces-src \
    CEPCES_PYTHON=~/.cache/certgate/cepces-venv/bin/python \
        .venv/bin/pytest -v tests/interop/test_wstep_cepces.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from tests.helpers import certgate, free_port, make_csr, require_tool
from tests.interop.cepces_harness import (
    ISSUED,
    REJECTED,
    UNDERCONFIGURED,
    WAITMORE,
    Auth,
    Cepces,
    RecordingProxy,
    certmonger_csr,
    locate_cepces,
    pem_certificates,
    run_submit,
    run_submit_argv,
    sanitize,
    wire_shape,
    write_conf,
)
from tests.interop.test_scep_certmonger import Certmonger, _status, _wait_status
from tests.pki_helpers import write_key
from tests.wstep_helpers import PASSWORD, add_user, gateway_b_config, serving

pytestmark = pytest.mark.interop

USER = "linux-host"
VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "cepces"


@dataclass
class Gateway:
    cfg: Path
    port: int
    tls_port: int
    work: Path
    tls_cert: Path
    client_cert: Path
    client_key: Path
    cepces: Cepces

    @property
    def cep_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}/wstep/CEP"

    @property
    def ces_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}/wstep/CES"

    def auth(self, kind: str, password: str = PASSWORD) -> Auth:
        if kind == "Certificate":
            return Auth(kind, certfile=self.client_cert, keyfile=self.client_key)
        return Auth(kind, username=USER, password=password)

    def client(self, name: str, kind: str, **conf: object) -> Path:
        """A working directory with a cepces.conf for ``kind`` authentication."""
        workdir = self.work / "clients" / name
        options = {"endpoint": self.cep_url, "cas": self.tls_cert, **conf}
        auth = options.pop("auth", None) or self.auth(kind)
        write_conf(workdir, auth=auth, **options)  # type: ignore[arg-type]
        return workdir

    def cli(self, *args: str) -> str:
        proc = certgate(*args, "-c", str(self.cfg), check=True)
        return proc.stdout

    def chain(self) -> list[x509.Certificate]:
        """The gateway's CA chain (issuing CA first), as ``certgate ca export`` writes it."""
        out = self.work / "ca-chain.pem"
        self.cli("ca", "export", "--out", str(out))
        return pem_certificates(out.read_text())


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cepces = locate_cepces()
    tmp = tmp_path_factory.mktemp("cepces")
    port, tls_port = free_port(), free_port()
    cfg = gateway_b_config(tmp, port=port, tls_port=tls_port)
    add_user(cfg, USER, principal=USER)
    # The Certificate endpoint's client: a device certificate this gateway issued.
    key = ec.generate_private_key(ec.SECP256R1())
    csr = tmp / "client.csr"
    csr.write_bytes(make_csr(key, cn="cepces-client").public_bytes(Encoding.PEM))
    client_cert = tmp / "client-chain.pem"
    certgate(
        "enroll", "-c", str(cfg), "--template", "device", "--csr", str(csr),
        "--principal", "cepces-client", "--out", str(client_cert), check=True,
    )  # fmt: skip
    client_key = write_key(tmp / "client.key", key)
    with serving(cfg, port):
        yield Gateway(
            cfg, port, tls_port, tmp, tmp / "tls" / "tls.crt", client_cert, client_key, cepces
        )


def _issued_by_gateway(gateway: Gateway, pem: str, csr_pem: str) -> x509.Certificate:
    """The one certificate in ``pem``: for the CSR's key, signed by the gateway's issuing CA."""
    certs = pem_certificates(pem)
    assert len(certs) == 1, pem
    cert = certs[0]
    issuing = gateway.chain()[0]
    cert.verify_directly_issued_by(issuing)
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert cert.public_key() == csr.public_key()
    return cert


@pytest.mark.parametrize("kind", ["Certificate", "UsernamePassword"])
def test_templates_are_listed(gateway: Gateway, kind: str) -> None:
    result = run_submit(
        gateway.cepces, gateway.client(f"templates-{kind}", kind), "GET-SUPPORTED-TEMPLATES"
    )
    assert result.code == ISSUED, result
    names = set(result.out.split())
    assert {"device", "approval-required", "tls-server"} <= names, result


@pytest.mark.parametrize("kind", ["Certificate", "UsernamePassword"])
def test_submit_issues_a_certificate_from_the_gateway_ca(gateway: Gateway, kind: str) -> None:
    csr = certmonger_csr(f"cepces-{kind.lower()}", "device")
    result = run_submit(gateway.cepces, gateway.client(f"submit-{kind}", kind), "SUBMIT", csr=csr)
    assert result.code == ISSUED, result
    cert = _issued_by_gateway(gateway, result.out, csr)
    assert cert.subject.rfc4514_string() == f"CN=cepces-{kind.lower()}"


def _pending(gateway: Gateway) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = json.loads(
        gateway.cli("requests", "list", "--state", "pending", "--json")
    )
    return listed


def test_manager_approval_is_pending_until_approved_then_the_poll_issues(
    gateway: Gateway,
) -> None:
    workdir = gateway.client("approval", "UsernamePassword")
    before = {r["id"] for r in _pending(gateway)}
    csr = certmonger_csr("cepces-approval", "approval-required")
    result = run_submit(gateway.cepces, workdir, "SUBMIT", csr=csr, ca_profile="approval-required")
    assert result.code == WAITMORE, result
    interval, request_id, reference = result.cookie
    assert interval == 2  # cepces.conf poll_interval
    assert 0 < int(request_id) < 2**32, result  # cepces parses RequestID as xs:unsignedInt
    assert reference == gateway.ces_url, result
    new = [r for r in _pending(gateway) if r["id"] not in before]
    assert len(new) == 1, new
    # Polled before the decision: still waiting, the same cookie again.
    cookie = f"{request_id},{reference}"
    again = run_submit(gateway.cepces, workdir, "POLL", ca_cookie=cookie)
    assert again.code == WAITMORE, again
    assert again.cookie[1:] == (request_id, reference)
    gateway.cli("requests", "approve", str(new[0]["id"]))
    done = run_submit(gateway.cepces, workdir, "POLL", ca_cookie=cookie)
    assert done.code == ISSUED, done
    cert = _issued_by_gateway(gateway, done.out, csr)
    assert cert.subject.rfc4514_string() == "CN=cepces-approval"


def test_wrong_password_is_a_rejection_with_the_fault_text(gateway: Gateway) -> None:
    """Straight to the CES URL (``type = Enrollment``): the SUBMIT is answered with a SOAP
    fault, which cepces reads only from an HTTP 500, and reports as REJECTED with its text."""
    workdir = gateway.client(
        "wrong-password",
        "UsernamePassword",
        auth=gateway.auth("UsernamePassword", password="not the password"),
        endpoint=gateway.ces_url,
        endpoint_type="Enrollment",
    )
    csr = certmonger_csr("cepces-wrong", "device")
    result = run_submit(gateway.cepces, workdir, "SUBMIT", csr=csr)
    assert result.code == REJECTED, result
    assert "username or password" in result.out and "(Code: " in result.out, result
    assert "Traceback" not in result.err, result


def test_wrong_password_at_the_policy_endpoint_is_read_as_a_soap_fault(gateway: Gateway) -> None:
    """Through the CEP (``type = Policy``) cepces 0.3.17 asks GetPolicies before any
    operation and does not catch a fault there: it logs it and exits UNDERCONFIGURED (its own
    handling). What certgate owes it is an answer it reads as a SOAP fault (HTTP 500), not an
    HTTP error."""
    workdir = gateway.client(
        "wrong-password-cep",
        "UsernamePassword",
        auth=gateway.auth("UsernamePassword", password="not the password"),
    )
    result = run_submit(gateway.cepces, workdir, "GET-SUPPORTED-TEMPLATES")
    assert result.code == UNDERCONFIGURED, result
    assert "SOAPFault" in result.err and "username or password" in result.err, result
    assert "HTTPError" not in result.err, result


def test_password_over_plain_http_is_refused_before_it_is_checked(gateway: Gateway) -> None:
    """An administrator who points cepces at the plain-HTTP listener: the UsernameToken is
    refused with a fault naming the https endpoint, which cepces reports as REJECTED."""
    workdir = gateway.client(
        "plain-http",
        "UsernamePassword",
        endpoint=f"http://127.0.0.1:{gateway.port}/wstep/CES",
        endpoint_type="Enrollment",
    )
    before = gateway.cli("requests", "list", "--json")
    result = run_submit(
        gateway.cepces, workdir, "SUBMIT", csr=certmonger_csr("cepces-http", "device")
    )
    assert result.code == REJECTED, result
    assert "only over TLS" in result.out and "Traceback" not in result.err, result
    assert gateway.cli("requests", "list", "--json") == before


def test_the_server_option_reaches_a_gateway_laid_out_like_ad_cs(tmp_path: Path) -> None:
    """cepces' documented invocation (and Samba's): ``cepces-submit --server=HOST --auth=AUTH``
    builds the AD CS URL ``https://HOST/ADPolicyProvider_CEP_<AUTH>/service.svc/CEP``. With
    ``[wstep] path`` set to that layout certgate answers it; the CES URL comes from
    GetPolicies."""
    cepces = locate_cepces()
    port, tls_port = free_port(), free_port()
    cfg = gateway_b_config(tmp_path, port=port, tls_port=tls_port)
    layout = "/ADPolicyProvider_CEP_UsernamePassword/service.svc"
    text = cfg.read_text()
    assert "[wstep]\nenabled = true\n" in text
    cfg.write_text(text.replace("[wstep]\n", f'[wstep]\npath = "{layout}"\n', 1))
    add_user(cfg, USER, principal=USER)
    workdir = tmp_path / "client"
    write_conf(
        workdir,
        endpoint="https://overridden.invalid/",
        auth=Auth("UsernamePassword", username=USER, password=PASSWORD),
        cas=tmp_path / "tls" / "tls.crt",
    )
    argv = ("--server", f"127.0.0.1:{tls_port}", "--auth", "UsernamePassword")
    csr = certmonger_csr("cepces-server-option", "device")
    with serving(cfg, port):
        listed = run_submit_argv(cepces, workdir, argv, "GET-SUPPORTED-TEMPLATES", {})
        issued = run_submit_argv(cepces, workdir, argv, "SUBMIT", {"csr": csr})
        chain = tmp_path / "chain.pem"
        certgate("ca", "export", "-c", str(cfg), "--out", str(chain), check=True)
    assert listed.code == ISSUED and "device" in listed.out.split(), listed
    assert issued.code == ISSUED, issued
    (cert,) = pem_certificates(issued.out)
    cert.verify_directly_issued_by(pem_certificates(chain.read_text())[0])


def test_fetch_roots_prints_the_ca_chain(gateway: Gateway) -> None:
    result = run_submit(gateway.cepces, gateway.client("roots", "Certificate"), "FETCH-ROOTS")
    assert result.code == ISSUED, result
    printed = pem_certificates(result.out)
    chain = gateway.chain()
    assert [c.subject for c in printed] == [c.subject for c in reversed(chain)], result
    assert printed == list(reversed(chain))
    # Each certificate is preceded by its nickname (its CN), as certmonger expects.
    for cert in printed:
        cn = str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
        assert f"{cn}\n-----BEGIN CERTIFICATE-----" in result.out


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


# What each vector file holds: (file, client, operation, which recorded request of that run).
CAPTURES = (
    ("get_policies_certificate.xml", "Certificate", "GET-SUPPORTED-TEMPLATES"),
    ("get_policies_username.xml", "UsernamePassword", "GET-SUPPORTED-TEMPLATES"),
    ("rst_issue_certificate.xml", "Certificate", "SUBMIT device"),
    ("rst_issue_username.xml", "UsernamePassword", "SUBMIT device"),
    ("rst_issue_pending_username.xml", "UsernamePassword", "SUBMIT approval-required"),
    ("rst_query_username.xml", "UsernamePassword", "POLL"),
    ("rst_issue_wrong_password.xml", "wrong", "SUBMIT device"),
)


def test_what_cepces_sends_is_what_the_vectors_hold(gateway: Gateway) -> None:
    """Every request kind cepces makes, recorded at a proxy in front of the TLS listener,
    equals the committed vector (volatile values aside). ``CEPCES_UPDATE_VECTORS=1`` rewrites
    the vectors instead (tests/vectors/README.md)."""
    tls_dir = gateway.tls_cert.parent
    client_der = pem_certificates(gateway.client_cert.read_text())[0].public_bytes(Encoding.DER)
    proxy = RecordingProxy(
        upstream=f"https://127.0.0.1:{gateway.tls_port}",
        server_cert=gateway.tls_cert,
        server_key=tls_dir / "tls.key",
        trust=gateway.tls_cert,
        client_keys={client_der: (gateway.client_cert, gateway.client_key)},
    )
    url = proxy.start()
    captured: dict[str, bytes] = {}
    cookie = ""
    try:
        for name, who, operation in CAPTURES:
            kind = "UsernamePassword" if who == "wrong" else who
            conf: dict[str, object] = {"endpoint": f"{url}/wstep/CEP"}
            if who == "wrong":
                conf.update(
                    auth=gateway.auth(kind, password="not the password"),
                    endpoint=f"{url}/wstep/CES",
                    endpoint_type="Enrollment",
                )
            workdir = gateway.client(f"capture-{name}", kind, **conf)
            op, _, template = operation.partition(" ")
            variables = {}
            if op == "SUBMIT":
                variables["csr"] = certmonger_csr(f"capture-{template}", template)
                variables["ca_profile"] = template
            if op == "POLL":
                # The cookie of the pending SUBMIT before, as certmonger keeps it.
                variables["ca_cookie"] = cookie or f"1,{url}/wstep/CES"
            start = len(proxy.exchanges)
            result = run_submit(gateway.cepces, workdir, op, **variables)
            if result.code == WAITMORE:
                cookie = result.out.strip().splitlines()[1]
            sent = proxy.exchanges[start:]
            # The run's last request is the one this vector is about (GetPolicies comes first).
            assert sent and sent[-1].path.endswith(
                "/CEP" if op == "GET-SUPPORTED-TEMPLATES" else "/CES"
            ), (result, [e.path for e in sent])
            placeholder = b"@WRONG_PASSWORD@" if who == "wrong" else b"@PASSWORD@"
            captured[name] = sanitize(sent[-1].request, url, placeholder)
    finally:
        proxy.stop()
    for body in captured.values():
        assert PASSWORD.encode() not in body and b"not the password" not in body
    if os.environ.get("CEPCES_UPDATE_VECTORS") == "1":
        VECTORS.mkdir(parents=True, exist_ok=True)
        for name, body in captured.items():
            (VECTORS / name).write_bytes(body)
    for name, body in captured.items():
        assert wire_shape(body) == wire_shape((VECTORS / name).read_bytes()), name
