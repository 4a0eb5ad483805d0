"""Issue #2 acceptance through the real CLI: openssl makes the CSRs and checks the results."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers import certgate, init_gateway, openssl, write_config


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    cfg = write_config(tmp_path)
    init_gateway(cfg)
    return cfg


def openssl_csr(
    tmp: Path,
    name: str,
    *,
    subj: str = "/CN=www.example.test",
    san: str = "DNS:www.example.test,DNS:api.example.test",
) -> Path:
    key, csr = tmp / f"{name}.key", tmp / f"{name}.csr"
    args = [
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        subj,
    ]
    if san:
        args += ["-addext", f"subjectAltName={san}"]
    result = openssl(*args)
    assert result.returncode == 0, result.stderr
    return csr


@pytest.mark.interop
def test_enroll_tls_server_returns_chain_openssl_verifies(cfg: Path, tmp_path: Path) -> None:
    csr = openssl_csr(tmp_path, "web")
    out = tmp_path / "chain.pem"
    proc = certgate(
        "enroll", "-c", str(cfg), "--template", "tls-server", "--csr", str(csr), "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "root.pem"
    certgate("ca", "export", "-c", str(cfg), "--out", str(root), check=True)
    pems = re.findall(
        rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", out.read_bytes(), re.S
    )
    assert len(pems) == 3  # leaf, issuing, root
    (tmp_path / "leaf.pem").write_bytes(pems[0])
    (tmp_path / "issuing.pem").write_bytes(pems[1])
    (tmp_path / "root-only.pem").write_bytes(pems[2])
    verify = openssl(
        "verify",
        "-CAfile",
        str(tmp_path / "root-only.pem"),
        "-untrusted",
        str(tmp_path / "issuing.pem"),
        "-purpose",
        "sslserver",
        str(tmp_path / "leaf.pem"),
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    text = openssl("x509", "-in", str(tmp_path / "leaf.pem"), "-noout", "-text").stdout
    assert b"DNS:www.example.test" in text and b"DNS:api.example.test" in text
    assert b"TLS Web Server Authentication" in text


@pytest.mark.interop
def test_approval_flow_pending_then_approve_then_show_yields_certificate(
    cfg: Path, tmp_path: Path
) -> None:
    csr = openssl_csr(tmp_path, "dev", subj="/CN=device-0001", san="")
    proc = certgate(
        "enroll", "-c", str(cfg), "--json", "--template", "approval-required", "--csr", str(csr)
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr  # 3 = pending
    pending = json.loads(proc.stdout)
    assert pending["status"] == "pending" and pending["reason"] == "approval"
    request_id = pending["request_id"]

    shown = json.loads(
        certgate("requests", "show", request_id, "-c", str(cfg), "--json", check=True).stdout
    )
    assert shown["state"] == "pending" and "chain" not in shown

    approved = certgate("requests", "approve", request_id, "-c", str(cfg), "--json")
    assert approved.returncode == 0, approved.stderr
    shown = json.loads(
        certgate("requests", "show", request_id, "-c", str(cfg), "--json", check=True).stdout
    )
    assert shown["state"] == "issued"
    assert "BEGIN CERTIFICATE" in shown["chain"]
    certs = json.loads(certgate("certs", "list", "-c", str(cfg), "--json", check=True).stdout)
    assert [c["serial"] for c in certs] == [shown["certificate_serial"]]


@pytest.mark.interop
def test_denied_approval_is_recorded_and_issues_nothing(cfg: Path, tmp_path: Path) -> None:
    csr = openssl_csr(tmp_path, "dev", subj="/CN=device-0002", san="")
    pending = json.loads(
        certgate(
            "enroll", "-c", str(cfg), "--json", "--template", "approval-required", "--csr", str(csr)
        ).stdout
    )
    denied = certgate(
        "requests",
        "deny",
        pending["request_id"],
        "--reason",
        "unknown device",
        "-c",
        str(cfg),
        "--json",
        check=True,
    )
    assert json.loads(denied.stdout)["rule"] == "manager"
    shown = json.loads(
        certgate(
            "requests", "show", pending["request_id"], "-c", str(cfg), "--json", check=True
        ).stdout
    )
    assert shown["state"] == "denied" and "unknown device" in shown["denial_detail"]
    assert json.loads(certgate("certs", "list", "-c", str(cfg), "--json").stdout) == []


@pytest.mark.interop
def test_revoked_certificate_is_on_the_next_crl(cfg: Path, tmp_path: Path) -> None:
    csr = openssl_csr(tmp_path, "web")
    issued = json.loads(
        certgate(
            "enroll",
            "-c",
            str(cfg),
            "--json",
            "--template",
            "tls-server",
            "--csr",
            str(csr),
            check=True,
        ).stdout
    )
    serial = issued["serial"]
    before = tmp_path / "before.crl"
    certgate("ca", "crl", "-c", str(cfg), "--out", str(before), check=True)
    assert (
        serial.upper()
        not in openssl("crl", "-inform", "DER", "-in", str(before), "-noout", "-text")
        .stdout.decode()
        .upper()
    )
    certgate("certs", "revoke", serial, "--reason", "key-compromise", "-c", str(cfg), check=True)
    after = tmp_path / "after.crl"
    certgate("ca", "crl", "-c", str(cfg), "--out", str(after), check=True)
    root = tmp_path / "chain.pem"
    certgate("ca", "export", "-c", str(cfg), "--out", str(root), check=True)
    text = openssl("crl", "-inform", "DER", "-in", str(after), "-noout", "-text").stdout.decode()
    assert serial.upper().lstrip("0") in text.replace(":", "").upper()
    assert "Key Compromise" in text
    shown = json.loads(
        certgate("certs", "show", serial, "-c", str(cfg), "--json", check=True).stdout
    )
    assert shown["status"] == "revoked" and shown["revocation_reason"] == "key_compromise"


def test_garbage_csr_is_a_clear_error_and_records_nothing(cfg: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.csr"
    junk.write_bytes(b"\x00\xffthis is not a CSR\x13\x37" * 10)
    proc = certgate("enroll", "-c", str(cfg), "--template", "tls-server", "--csr", str(junk))
    assert proc.returncode == 1
    assert "bad-csr" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads(certgate("requests", "list", "-c", str(cfg), "--json").stdout) == []


@pytest.mark.interop
def test_csr_with_broken_signature_is_denied_by_rule_and_not_issued(
    cfg: Path, tmp_path: Path
) -> None:
    csr = openssl_csr(tmp_path, "web")
    der = openssl("req", "-in", str(csr), "-outform", "DER").stdout
    broken = bytearray(der)
    broken[-3] ^= 0x55  # inside the signature value
    bad = tmp_path / "broken.der"
    bad.write_bytes(bytes(broken))
    proc = certgate(
        "enroll", "-c", str(cfg), "--json", "--template", "tls-server", "--csr", str(bad)
    )
    assert proc.returncode in (1, 4), proc.stderr
    assert "Traceback" not in proc.stderr
    if proc.returncode == 4:
        assert json.loads(proc.stdout)["rule"] == "csr-signature"
    assert json.loads(certgate("certs", "list", "-c", str(cfg), "--json").stdout) == []


@pytest.mark.interop
def test_unknown_template_is_a_clear_error(cfg: Path, tmp_path: Path) -> None:
    csr = openssl_csr(tmp_path, "web")
    proc = certgate("enroll", "-c", str(cfg), "--template", "no-such", "--csr", str(csr))
    assert proc.returncode == 1
    assert "unknown-template" in proc.stderr and "no-such" in proc.stderr


def test_bad_config_names_file_key_and_reason(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("access_log = false", "acess_log = false"))
    proc = certgate("templates", "list", "-c", str(cfg))
    assert proc.returncode == 2
    assert str(cfg) in proc.stderr and "server.acess_log" in proc.stderr
    assert "unknown key" in proc.stderr and "Traceback" not in proc.stderr


def test_templates_list_shows_the_shipped_templates(cfg: Path) -> None:
    names = {
        t["name"]
        for t in json.loads(
            certgate("templates", "list", "-c", str(cfg), "--json", check=True).stdout
        )
    }
    assert {"tls-server", "device", "approval-required"} <= names


@pytest.mark.interop
def test_major_version_bump_makes_issued_certificates_due(tmp_path: Path) -> None:
    import shutil

    templates = tmp_path / "templates"
    shutil.copytree(Path(__file__).resolve().parents[2] / "conf" / "templates", templates)
    cfg = write_config(tmp_path)
    cfg.write_text(
        cfg.read_text().replace(
            str(Path(__file__).resolve().parents[2] / "conf" / "templates"), str(templates)
        )
    )
    init_gateway(cfg)
    csr = openssl_csr(tmp_path, "web")
    issued = json.loads(
        certgate(
            "enroll",
            "-c",
            str(cfg),
            "--json",
            "--template",
            "tls-server",
            "--csr",
            str(csr),
            check=True,
        ).stdout
    )
    assert json.loads(certgate("certs", "due", "-c", str(cfg), "--json", check=True).stdout) == []

    tls = templates / "tls-server.toml"
    text = tls.read_text()
    major = int(re.search(r"(?m)^major_version\s*=\s*(\d+)", text).group(1))  # type: ignore[union-attr]
    tls.write_text(re.sub(r"(?m)^major_version\s*=\s*\d+", f"major_version = {major + 1}", text))
    due = json.loads(certgate("certs", "due", "-c", str(cfg), "--json", check=True).stdout)
    assert [d["serial"] for d in due] == [issued["serial"]]
    assert due[0]["reason"] == "template major version bumped"


def test_templates_show_and_ca_show(cfg: Path) -> None:
    shown = json.loads(
        certgate("templates", "show", "tls-server", "-c", str(cfg), "--json", check=True).stdout
    )
    assert shown["name"] == "tls-server" and shown["oid"].startswith("2.25.")
    ca = json.loads(certgate("ca", "show", "-c", str(cfg), "--json", check=True).stdout)
    assert len(ca) == 2 and ca[0]["issuer"] == ca[1]["subject"]
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", ca[1]["sha256"])
    missing = certgate("templates", "show", "nope", "-c", str(cfg))
    assert missing.returncode == 1 and "unknown-template" in missing.stderr
