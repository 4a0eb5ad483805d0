# ruff: noqa: F811  (pytest fixtures imported from tests.interop.cepces_gateway)
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
cepces/certmonger/core.py); under a private certmonger daemon in test_wstep_cepces_certmonger.py.

Reproduce::

    tests/interop/cepces_setup.sh        # or: cepces_setup.sh SOURCE SRC_DIR VENV_DIR
    CEPCES_SRC=~/.cache/certgate/cepces-src \
    CEPCES_PYTHON=~/.cache/certgate/cepces-venv/bin/python \
        .venv/bin/pytest -v tests/interop/test_wstep_cepces.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.helpers import certgate, free_port
from tests.interop.cepces_gateway import (
    USER,
    Gateway,
    _issued_by_gateway,
    _pending,
    gateway,  # noqa: F401
)
from tests.interop.cepces_harness import (
    ISSUED,
    REJECTED,
    UNDERCONFIGURED,
    WAITMORE,
    Auth,
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
from tests.wstep_helpers import PASSWORD, add_user, gateway_b_config, serving

pytestmark = pytest.mark.interop

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "cepces"


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
