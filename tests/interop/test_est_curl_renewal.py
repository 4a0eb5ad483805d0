# ruff: noqa: F811  (pytest fixtures imported from tests.interop.est_curl_fixtures)
"""EST against a real ``certgate serve``, with curl + openssl as the client (RFC 7030), after
the first enrollment: approval (202), /simplereenroll, /serverkeygen, /csrattrs and a
forwarded client certificate from an untrusted peer.

One gateway per module (starting one costs seconds); every test uses its own keys and names,
so the tests do not depend on each other's order."""

from __future__ import annotations

import base64
import email
import email.policy
import time
from urllib.parse import quote

import pytest

from tests.est_helpers import (
    Gateway,
    curl,
    openssl_req,
    p7_to_pem,
)
from tests.helpers import certgate, openssl
from tests.interop.est_curl_fixtures import (
    ALICE,
    PKCS10,
    _cert,
    _cli_json,
    _enroll,
    gw,  # noqa: F401
)
from tests.pki_helpers import issue_leaf

pytestmark = pytest.mark.interop


def _asn1parse(gw: Gateway, body: bytes, name: str) -> str:
    der = gw.tmp / f"{name}.der"
    der.write_bytes(base64.b64decode(b"".join(body.split())))
    proc = openssl("asn1parse", "-inform", "DER", "-in", str(der))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode()


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
