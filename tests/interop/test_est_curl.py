# ruff: noqa: F811  (pytest fixtures imported from tests.interop.est_curl_fixtures)
"""EST against a real ``certgate serve``, with curl + openssl as the client (RFC 7030): /cacerts,
authentication and request format (approval, re-enrollment, server keygen and csrattrs:
test_est_curl_renewal.py).

One gateway per module (starting one costs seconds); every test uses its own keys and names,
so the tests do not depend on each other's order.
"""

from __future__ import annotations

import base64
import subprocess

import pytest
from cryptography import x509

from tests.est_helpers import (
    Gateway,
    curl,
    openssl_req,
    p7_to_pem,
)
from tests.helpers import openssl, require_tool
from tests.interop.est_curl_fixtures import (
    ALICE,
    PKCS10,
    _cli_json,
    _enroll,
    gw,  # noqa: F401
)
from tests.pki_helpers import issue_leaf, make_ca, valid

pytestmark = pytest.mark.interop


# --- /cacerts -----------------------------------------------------------------------------


def test_cacerts_with_and_without_label_returns_the_chain(gw: Gateway) -> None:
    for path in ("/cacerts", "/renew/cacerts"):
        r = curl(gw, path)
        assert r.status == 200 and r.header("content-type") == "application/pkcs7-mime"
        certs = x509.load_pem_x509_certificates(p7_to_pem(gw.tmp, r.body, "cacerts").read_bytes())
        chain = x509.load_pem_x509_certificates(gw.ca_file.read_bytes())
        assert {c.subject for c in certs} == {c.subject for c in chain}


def test_operation_name_is_never_mistaken_for_a_label(gw: Gateway) -> None:
    r = curl(gw, "/simpleenroll/cacerts")
    assert r.status == 404 and b"unknown EST label" in r.body


def test_unknown_label_is_404(gw: Gateway) -> None:
    csr = openssl_req(gw.tmp, "nolabel", "/CN=nolabel")
    r = curl(gw, "/no-such-label/simpleenroll", *ALICE, *PKCS10, data=csr)
    assert r.status == 404 and b"no-such-label" in r.body


def test_fullcmc_is_501(gw: Gateway) -> None:
    csr = openssl_req(gw.tmp, "cmc", "/CN=cmc")
    r = curl(gw, "/fullcmc", *ALICE, "-H", "Content-Type: application/pkcs7-mime", data=csr)
    assert r.status == 501


def test_plain_http_listener_refuses_est(gw: Gateway) -> None:
    exe = require_tool("curl")
    out = subprocess.run(
        [exe, "-s", "-w", "\n%{http_code}", f"http://127.0.0.1:{gw.http_port}/.well-known/est/cacerts"],
        capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    body, status = out.rsplit("\n", 1)
    assert status == "403" and "only over HTTPS" in body


# --- authentication -----------------------------------------------------------------------


def test_missing_credentials_get_401_with_basic_challenge(gw: Gateway) -> None:
    csr = openssl_req(gw.tmp, "nocreds", "/CN=nocreds")
    r = curl(gw, "/simpleenroll", *PKCS10, data=csr)
    assert r.status == 401
    assert r.header("www-authenticate") == 'Basic realm="certgate EST"'


def test_wrong_password_gets_401(gw: Gateway) -> None:
    csr = openssl_req(gw.tmp, "wrongpw", "/CN=wrongpw")
    r = curl(gw, "/simpleenroll", "--user", "alice:wrong", *PKCS10, data=csr)
    assert r.status == 401 and b"invalid" in r.body
    assert (
        r.header(
            "www-authenticate",
        )
        is not None
    )


def test_enroll_with_basic_returns_only_the_issued_certificate(gw: Gateway) -> None:
    csr = openssl_req(gw.tmp, "basic-dev", "/CN=basic-dev")
    r = curl(gw, "/simpleenroll", *ALICE, *PKCS10, data=csr)
    assert r.status == 200
    assert r.header("content-type") == "application/pkcs7-mime; smime-type=certs-only"
    certs = x509.load_pem_x509_certificates(p7_to_pem(gw.tmp, r.body, "basic-dev").read_bytes())
    assert len(certs) == 1
    assert certs[0].subject.rfc4514_string() == "CN=basic-dev"
    pub = openssl("req", "-in", str(gw.tmp / "basic-dev.csr.pem"), "-pubkey", "-noout").stdout
    assert pub == openssl("x509", "-in", str(gw.tmp / "basic-dev.pem"), "-pubkey", "-noout").stdout


def test_enroll_with_a_client_certificate_of_this_ca(gw: Gateway) -> None:
    cert, key = _enroll(gw, "tls-dev")
    csr = openssl_req(gw.tmp, "tls-dev-2", "/CN=tls-dev-2")
    r = curl(gw, "/simpleenroll", "--cert", str(cert), "--key", str(key), *PKCS10, data=csr)
    assert r.status == 200, r.body
    records = _cli_json(gw, "certs", "list")
    assert any(c["subject"] == "CN=tls-dev-2" and c["requester"] == "alice" for c in records)


def test_enroll_with_a_manufacturer_certificate_on_a_bootstrap_label(gw: Gateway) -> None:
    boot_key, boot_cert = gw.boot  # type: ignore[attr-defined]
    cert, key = issue_leaf(gw.tmp, "idevid-1", boot_key, boot_cert)
    csr = openssl_req(gw.tmp, "idevid-1-csr", "/CN=idevid-1")
    r = curl(gw, "/bootstrap/simpleenroll", "--cert", str(cert), "--key", str(key), *PKCS10,
             data=csr)  # fmt: skip
    assert r.status == 200, r.body
    records = _cli_json(gw, "certs", "list")
    assert any(c["requester"] == "idevid-1" for c in records)


def test_expired_manufacturer_certificate_gets_403(gw: Gateway) -> None:
    boot_key, boot_cert = gw.boot  # type: ignore[attr-defined]
    cert, key = issue_leaf(gw.tmp, "idevid-old", boot_key, boot_cert, **valid(-10, -1))
    csr = openssl_req(gw.tmp, "idevid-old-csr", "/CN=idevid-old")
    r = curl(gw, "/bootstrap/simpleenroll", "--cert", str(cert), "--key", str(key), *PKCS10,
             data=csr)  # fmt: skip
    assert r.status == 403 and b"expired" in r.body


def test_untrusted_issuer_completes_the_handshake_and_gets_403_naming_the_anchors(
    gw: Gateway,
) -> None:
    """Issue #12 item 11: a certificate no label trusts used to fail the TLS handshake."""
    _, rogue_key, rogue_cert = make_ca(gw.tmp, "rogue-ca")
    cert, key = issue_leaf(gw.tmp, "rogue-device", rogue_key, rogue_cert)
    csr = openssl_req(gw.tmp, "rogue-device-csr", "/CN=rogue-device")
    r = curl(gw, "/bootstrap/simpleenroll", "--cert", str(cert), "--key", str(key), *PKCS10,
             data=csr)  # fmt: skip
    assert r.status == 403, r.body
    assert b"label bootstrap" in r.body and b"CN=manufacturer-ca" in r.body


def test_untrusted_factory_certificate_falls_back_to_basic(gw: Gateway) -> None:
    """A device that always presents its factory certificate, on a label accepting Basic."""
    _, rogue_key, rogue_cert = make_ca(gw.tmp, "other-factory-ca")
    cert, key = issue_leaf(gw.tmp, "factory-dev", rogue_key, rogue_cert)
    csr = openssl_req(gw.tmp, "factory-dev-csr", "/CN=factory-dev")
    tls = ("--cert", str(cert), "--key", str(key))
    r = curl(gw, "/simpleenroll", *tls, *PKCS10, data=csr)
    assert r.status == 401 and r.header("WWW-Authenticate"), r.body
    r = curl(gw, "/simpleenroll", *tls, *ALICE, *PKCS10, data=csr)
    assert r.status == 200, r.body


def test_certificate_only_label_refuses_basic_credentials(gw: Gateway) -> None:
    csr = openssl_req(gw.tmp, "boot-basic", "/CN=boot-basic")
    r = curl(gw, "/bootstrap/simpleenroll", *ALICE, *PKCS10, data=csr)
    assert r.status == 403 and b"requires a TLS client certificate" in r.body


def test_gateway_certificate_is_not_a_bootstrap_anchor(gw: Gateway) -> None:
    cert, key = _enroll(gw, "not-boot")
    csr = openssl_req(gw.tmp, "not-boot-2", "/CN=not-boot")
    r = curl(gw, "/bootstrap/simpleenroll", "--cert", str(cert), "--key", str(key), *PKCS10,
             data=csr)  # fmt: skip
    assert r.status == 403 and b"trust anchor" in r.body


def test_one_time_code_enrolls_once(gw: Gateway) -> None:
    created = _cli_json(gw, "est", "code", "create", "--label", "codes", "--identity", "sensor-7")
    code = created["code"]
    csr = openssl_req(gw.tmp, "sensor-7", "/CN=sensor-7")
    r = curl(gw, "/codes/simpleenroll", "--user", f":{code}", *PKCS10, data=csr)
    assert r.status == 200, r.body
    records = _cli_json(gw, "certs", "list")
    assert any(c["subject"] == "CN=sensor-7" and c["requester"] == "sensor-7" for c in records)
    other = openssl_req(gw.tmp, "sensor-7b", "/CN=sensor-7")
    r = curl(gw, "/codes/simpleenroll", "--user", f":{code}", *PKCS10, data=other)
    assert r.status == 401 and b"already been used" in r.body


def test_code_of_another_label_is_refused(gw: Gateway) -> None:
    created = _cli_json(gw, "est", "code", "create", "--identity", "elsewhere")
    csr = openssl_req(gw.tmp, "elsewhere", "/CN=elsewhere")
    r = curl(gw, "/codes/simpleenroll", "--user", f":{created['code']}", *PKCS10, data=csr)
    assert r.status == 401


# --- request format -------------------------------------------------------------------------


def test_csr_with_line_breaks_and_cte_header_is_accepted(gw: Gateway) -> None:
    csr = openssl_req(gw.tmp, "wrapped", "/CN=wrapped")
    one_line = gw.tmp / "wrapped.oneline"
    one_line.write_bytes(b"".join(csr.read_bytes().split()))
    crlf = gw.tmp / "wrapped.crlf"
    crlf.write_bytes(csr.read_bytes().replace(b"\n", b"\r\n"))
    r = curl(gw, "/simpleenroll", *ALICE, *PKCS10, "-H", "Content-Transfer-Encoding: binary",
             data=crlf)  # fmt: skip
    assert r.status == 200
    r = curl(gw, "/simpleenroll", *ALICE, "-H", "Content-Type: Application/PKCS10; x=y",
             data=one_line)  # fmt: skip
    assert r.status == 200


def test_raw_der_body_is_400(gw: Gateway) -> None:
    openssl_req(gw.tmp, "rawder", "/CN=rawder")
    der = gw.tmp / "rawder.der"
    der.write_bytes(openssl("req", "-in", str(gw.tmp / "rawder.csr.pem"), "-outform", "DER").stdout)
    r = curl(gw, "/simpleenroll", *ALICE, *PKCS10, data=der)
    assert r.status == 400 and b"raw DER" in r.body


def test_truncated_base64_is_400(gw: Gateway) -> None:
    csr = openssl_req(gw.tmp, "trunc", "/CN=trunc")
    cut = gw.tmp / "trunc.cut"
    cut.write_bytes(b"".join(csr.read_bytes().split())[:-3])
    r = curl(gw, "/simpleenroll", *ALICE, *PKCS10, data=cut)
    assert r.status == 400 and b"truncated" in r.body


def test_oversize_body_is_413(gw: Gateway) -> None:
    big = gw.tmp / "big.b64"
    big.write_bytes(base64.b64encode(b"\x00" * 8192))
    r = curl(gw, "/simpleenroll", *ALICE, *PKCS10, data=big)
    assert r.status == 413


def test_wrong_content_type_is_415(gw: Gateway) -> None:
    csr = openssl_req(gw.tmp, "ctype", "/CN=ctype")
    r = curl(gw, "/simpleenroll", *ALICE, "-H", "Content-Type: application/json", data=csr)
    assert r.status == 415 and b"application/pkcs10" in r.body


def test_policy_denial_is_403_naming_the_rule(gw: Gateway) -> None:
    csr = openssl_req(gw.tmp, "badcn", "/CN=bad name!")
    r = curl(gw, "/simpleenroll", *ALICE, *PKCS10, data=csr)
    assert r.status == 403 and b"subject-" in r.body
