"""EST against a real ``certgate serve``, with curl + openssl as the client (RFC 7030).

One gateway per module (starting one costs seconds); every test uses its own keys and names,
so the tests do not depend on each other's order.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography import x509

from tests.est_helpers import (
    Gateway,
    curl,
    openssl_req,
    p7_to_pem,
    serving,
    write_est_config,
)
from tests.helpers import certgate, free_port, init_gateway, openssl, require_tool
from tests.pki_helpers import issue_leaf, make_ca, valid

pytestmark = pytest.mark.interop

PKCS10 = ("-H", "Content-Type: application/pkcs10")
ALICE = ("--user", "alice:correct horse")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    require_tool("curl")
    require_tool("openssl")
    tmp = tmp_path_factory.mktemp("est")
    boot_path, boot_key, boot_cert = make_ca(tmp, "manufacturer-ca")
    port = free_port()
    cfg = write_est_config(
        tmp,
        est_port=port,
        est=f"""
        retry_window = "3s"
        max_body_bytes = 4096
        [est.labels.approval]
        template = "approval-required"
        [est.labels.renew]
        template = "est-device"
        [est.labels.codes]
        template = "device"
        auth = ["basic"]
        [est.labels.bootstrap]
        template = "device"
        auth = ["tls-client-cert"]
        trust_anchors = ["{boot_path}"]
        [est.labels.pop]
        template = "device"
        require_pop_link = true
        [est.labels.noattrs]
        template = "device"
        csrattrs = false
        """,
    )
    init_gateway(cfg)
    certgate(
        "est", "user", "add", "alice", "--password-env", "PW", "-c", str(cfg),
        env={"PW": "correct horse"}, check=True,
    )  # fmt: skip
    with serving(cfg, port) as gateway:
        gateway.boot = (boot_key, boot_cert)  # type: ignore[attr-defined]
        yield gateway


def _cli_json(gw: Gateway, *args: str) -> Any:
    return json.loads(certgate(*args, "-c", str(gw.cfg), "--json", check=True).stdout)


def _cert(pem: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem.read_bytes())[0]


def _enroll(
    gw: Gateway, name: str, *, label: str = "", san: str = "", key: Path | None = None
) -> tuple[Path, Path]:
    """Enroll CN=name with Basic auth; returns (certificate PEM, key)."""
    csr = openssl_req(gw.tmp, name, f"/CN={name}", san=san, key=key)
    r = curl(gw, f"{label}/simpleenroll", *ALICE, *PKCS10, data=csr)
    assert r.status == 200, r.body
    return p7_to_pem(gw.tmp, r.body, name), key or gw.tmp / f"{name}.key"


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


# --- 202 and approval -----------------------------------------------------------------------


def test_approval_flow_returns_the_certificate_once(gw: Gateway) -> None:
    key = gw.tmp / "approve-me.key"
    csr = openssl_req(gw.tmp, "approve-me", "/CN=approve-me", key=key)
    r = curl(gw, "/approval/simpleenroll", *ALICE, *PKCS10, data=csr)
    assert r.status == 202 and r.header("retry-after") == "60"
    again = curl(gw, "/approval/simpleenroll", *ALICE, *PKCS10, data=csr)
    assert again.status == 202
    pending = [
        p
        for p in _cli_json(gw, "requests", "list", "--state", "pending")
        if p["template"] == "approval-required" and p["requester"]["principal"] == "alice"
    ]
    assert len(pending) == 1
    certgate("requests", "approve", pending[0]["id"], "-c", str(gw.cfg), check=True)
    # The client regenerates its CSR (same key) and sends it again.
    csr = openssl_req(gw.tmp, "approve-me-2", "/CN=approve-me", key=key)
    r = curl(gw, "/approval/simpleenroll", *ALICE, *PKCS10, data=csr)
    assert r.status == 200, r.body
    issued = _cert(p7_to_pem(gw.tmp, r.body, "approve-me"))
    records = [c for c in _cli_json(gw, "certs", "list") if c["subject"] == "CN=approve-me"]
    assert len(records) == 1 and records[0]["serial"] == format(issued.serial_number, "x")


# --- /simplereenroll ------------------------------------------------------------------------


def test_reenroll_with_the_same_key_renews_and_supersedes(gw: Gateway) -> None:
    cert, key = _enroll(gw, "renew-me", label="/renew")
    old = _cert(cert)
    csr = openssl_req(gw.tmp, "renew-me-2", "/CN=renew-me", key=key)
    r = curl(gw, "/renew/simplereenroll", "--cert", str(cert), "--key", str(key), *PKCS10,
             data=csr)  # fmt: skip
    answered = time.monotonic()
    assert r.status == 200, r.body
    # Within the retry window (3 s) the identical request gets the same certificate.
    again = curl(gw, "/renew/simplereenroll", "--cert", str(cert), "--key", str(key), *PKCS10,
                 data=csr)  # fmt: skip
    new = _cert(p7_to_pem(gw.tmp, r.body, "renew-me-new"))
    assert _cert(p7_to_pem(gw.tmp, again.body, "renew-me-again")).serial_number == new.serial_number
    assert new.serial_number != old.serial_number
    assert new.public_key() == old.public_key()
    shown = _cli_json(gw, "certs", "show", format(old.serial_number, "x"))
    assert shown["superseded_by"] == format(new.serial_number, "x")
    # After it, a renewal of the (now superseded) certificate is refused.
    time.sleep(max(0.0, 3.5 - (time.monotonic() - answered)))
    r = curl(gw, "/renew/simplereenroll", "--cert", str(cert), "--key", str(key), *PKCS10,
             data=csr)  # fmt: skip
    assert r.status == 403 and b"already renewed" in r.body


def test_reenroll_with_a_new_key_rekeys(gw: Gateway) -> None:
    cert, key = _enroll(gw, "rekey-me", label="/renew")
    csr = openssl_req(gw.tmp, "rekey-me-2", "/CN=rekey-me")
    r = curl(gw, "/renew/simplereenroll", "--cert", str(cert), "--key", str(key), *PKCS10,
             data=csr)  # fmt: skip
    assert r.status == 200, r.body
    pem = p7_to_pem(gw.tmp, r.body, "rekey-me-new")
    new_pub = openssl("x509", "-in", str(pem), "-pubkey", "-noout").stdout
    csr_pub = openssl("req", "-in", str(gw.tmp / "rekey-me-2.csr.pem"), "-pubkey", "-noout").stdout
    assert new_pub == csr_pub
    assert new_pub != openssl("x509", "-in", str(cert), "-pubkey", "-noout").stdout


def test_reenroll_before_the_window_is_refused_when_the_template_says_so(gw: Gateway) -> None:
    cert, key = _enroll(gw, "early-bird")  # template "device": early_renewal = false
    csr = openssl_req(gw.tmp, "early-bird-2", "/CN=early-bird", key=key)
    r = curl(gw, "/simplereenroll", "--cert", str(cert), "--key", str(key), *PKCS10, data=csr)
    assert r.status == 403 and b"renewal-window" in r.body


def test_reenroll_without_a_client_certificate_is_403(gw: Gateway) -> None:
    csr = openssl_req(gw.tmp, "anon-re", "/CN=anon-re")
    r = curl(gw, "/renew/simplereenroll", *ALICE, *PKCS10, data=csr)
    assert r.status == 403 and b"client certificate must be provided" in r.body


def test_reenroll_with_another_subject_is_403(gw: Gateway) -> None:
    cert, key = _enroll(gw, "subj-a", label="/renew")
    csr = openssl_req(gw.tmp, "subj-b", "/CN=subj-b", key=key)
    r = curl(gw, "/renew/simplereenroll", "--cert", str(cert), "--key", str(key), *PKCS10,
             data=csr)  # fmt: skip
    assert r.status == 403 and b"subject" in r.body


def test_reenroll_with_another_san_is_403(gw: Gateway) -> None:
    cert, key = _enroll(gw, "san-a", label="/renew", san="DNS:san-a.example")
    csr = openssl_req(gw.tmp, "san-a-2", "/CN=san-a", key=key, san="DNS:other.example")
    r = curl(gw, "/renew/simplereenroll", "--cert", str(cert), "--key", str(key), *PKCS10,
             data=csr)  # fmt: skip
    assert r.status == 403 and b"subjectAltName" in r.body


def test_reenroll_with_a_revoked_certificate_is_403(gw: Gateway) -> None:
    cert, key = _enroll(gw, "revoke-me", label="/renew")
    certgate("certs", "revoke", format(_cert(cert).serial_number, "x"), "-c", str(gw.cfg),
             check=True)  # fmt: skip
    csr = openssl_req(gw.tmp, "revoke-me-2", "/CN=revoke-me", key=key)
    r = curl(gw, "/renew/simplereenroll", "--cert", str(cert), "--key", str(key), *PKCS10,
             data=csr)  # fmt: skip
    assert r.status == 403 and b"revoked" in r.body


def test_reenroll_with_a_foreign_certificate_is_403(gw: Gateway) -> None:
    boot_key, boot_cert = gw.boot  # type: ignore[attr-defined]
    cert, key = issue_leaf(gw.tmp, "foreign", boot_key, boot_cert)
    csr = openssl_req(gw.tmp, "foreign-2", "/CN=foreign", key=key)
    r = curl(gw, "/simplereenroll", "--cert", str(cert), "--key", str(key), *PKCS10, data=csr)
    assert r.status == 403 and b"not issued by this CA" in r.body


# --- /serverkeygen and /csrattrs ------------------------------------------------------------


def test_serverkeygen_returns_a_key_matching_the_certificate(gw: Gateway) -> None:
    csr = openssl_req(gw.tmp, "keygen", "/CN=keygen")
    r = curl(gw, "/renew/serverkeygen", *ALICE, *PKCS10, data=csr)
    assert r.status == 200, r.body
    content_type = r.header("content-type") or ""
    assert content_type.startswith("multipart/mixed")
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + r.body, policy=email.policy.HTTP
    )
    parts = list(message.iter_parts())  # type: ignore[attr-defined]
    assert [p.get_content_type() for p in parts] == ["application/pkcs8", "application/pkcs7-mime"]
    key_der = gw.tmp / "keygen.p8.der"
    key_der.write_bytes(base64.b64decode(str(parts[0].get_payload())))
    cert_pem = p7_to_pem(gw.tmp, str(parts[1].get_payload()).encode(), "keygen-cert")
    key_pub = openssl("pkey", "-inform", "DER", "-in", str(key_der), "-pubout").stdout
    cert_pub = openssl("x509", "-in", str(cert_pem), "-pubkey", "-noout").stdout
    assert key_pub and key_pub == cert_pub
    csr_pub = openssl("req", "-in", str(gw.tmp / "keygen.csr.pem"), "-pubkey", "-noout").stdout
    assert csr_pub != cert_pub


def test_serverkeygen_refuses_approval_templates(gw: Gateway) -> None:
    csr = openssl_req(gw.tmp, "keygen-approval", "/CN=keygen-approval")
    r = curl(gw, "/approval/serverkeygen", *ALICE, *PKCS10, data=csr)
    assert r.status == 403 and b"never stored" in r.body


def _asn1parse(gw: Gateway, body: bytes, name: str) -> str:
    der = gw.tmp / f"{name}.der"
    der.write_bytes(base64.b64decode(b"".join(body.split())))
    proc = openssl("asn1parse", "-inform", "DER", "-in", str(der))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode()


def test_csrattrs_render_the_template(gw: Gateway) -> None:
    r = curl(gw, "/csrattrs")
    assert r.status == 200 and r.header("content-type") == "application/csrattrs"
    parsed = _asn1parse(gw, r.body, "csrattrs")
    expected_names = (
        "id-ecPublicKey",
        "prime256v1",
        "secp384r1",
        "rsaEncryption",
        "ecdsa-with-SHA256",
        "Extension Request",
        "X509v3 Extended Key Usage",
    )
    for expected in expected_names:
        assert expected in parsed, parsed
    assert "challengePassword" not in parsed


def test_csrattrs_ask_for_the_pop_link_when_required(gw: Gateway) -> None:
    r = curl(gw, "/pop/csrattrs")
    assert r.status == 200 and "challengePassword" in _asn1parse(gw, r.body, "csrattrs-pop")


def test_csrattrs_204_when_the_label_has_none(gw: Gateway) -> None:
    r = curl(gw, "/noattrs/csrattrs")
    assert r.status == 204 and r.body == b""


def test_forwarded_certificate_header_is_ignored_from_untrusted_peers(gw: Gateway) -> None:
    cert, key = _enroll(gw, "spoofed", label="/renew")
    header = "X-SSL-Client-Cert: " + quote(cert.read_text())
    csr = openssl_req(gw.tmp, "spoofed-2", "/CN=spoofed", key=key)
    r = curl(gw, "/renew/simplereenroll", "-H", header, *ALICE, *PKCS10, data=csr)
    assert r.status == 403 and b"client certificate must be provided" in r.body
