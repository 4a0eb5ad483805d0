"""The serve banner's client commands for configurations other than an initialised site
(issue #15 item 1): secrets by reference (``env:``, ``file:``), placeholders naming the command
that makes a missing credential, plain-HTTP main listeners, and nothing for protocols that are
off. Pure functions of the configuration; the site's commands run verbatim in
test_serve_site."""

from __future__ import annotations

from pathlib import Path

from gateway.config import parse_config
from gateway.server.banner import client_lines, ra_hex


def _lines(tmp: Path, data: dict[str, object]) -> dict[str, str]:
    config = parse_config(data, str(tmp / "certgate.toml"), tmp)
    front = [("SCEP RA SHA-256", "AB:CD:EF (ra)")]
    return dict(client_lines(config, tmp / "root.pem", front))


def test_nothing_for_protocols_that_are_off(tmp_path: Path) -> None:
    assert _lines(tmp_path, {}) == {}


def test_scep_challenge_by_reference_and_otp_placeholder(tmp_path: Path) -> None:
    endpoints = {
        "a": {"challenge": "static", "challenge_password": "env:SCEP_SECRET"},
        "b": {"challenge": "otp"},
    }
    lines = _lines(tmp_path, {"scep": {"enabled": True, "endpoints": endpoints}})
    assert "-server-url http://127.0.0.1:8080/scep/a " in lines["  scepclient"]  # no legacy one
    assert '-challenge "$SCEP_SECRET"' in lines["  scepclient"]
    assert "-ca-fingerprint abcdef" in lines["  scepclient"]
    legacy = {**endpoints["b"], "legacy_des": True}
    both = {"scep": {"enabled": True, "endpoints": {"a": endpoints["a"], "b": legacy}}}
    config = parse_config(both, str(tmp_path / "c.toml"), tmp_path)
    shown = client_lines(config, tmp_path / "root.pem", [])
    assert [v for k, v in shown if k == "SCEP"] == [
        "http://127.0.0.1:8080/scep/a",
        "http://127.0.0.1:8080/scep/b (single DES, SHA-1: legacy clients)",
    ]
    assert "-server-url http://127.0.0.1:8080/scep/b -challenge OTP" in dict(shown)["  scepclient"]
    otp = _lines(tmp_path, {"scep": {"enabled": True, "endpoints": {"b": endpoints["b"]}}})
    assert otp["  scepclient"].endswith("# OTP: certgate scep otp create --endpoint b")
    relative = {"challenge": "static", "challenge_password": "file:secret.txt"}
    ref = _lines(tmp_path, {"scep": {"enabled": True, "endpoints": {"c": relative}}})
    assert f'-challenge "$(cat {tmp_path.resolve() / "secret.txt"})"' in ref["  scepclient"]


def test_est_without_a_site_secret_names_the_user_command(tmp_path: Path) -> None:
    lines = _lines(tmp_path, {"est": {"enabled": True, "port": 9999}})
    assert lines["EST"] == "https://localhost:9999/.well-known/est/"
    command = lines["  curl+openssl"]
    assert "-u USER:PASSWORD" in command and command.endswith("# USER: certgate est user add")
    assert f"--cacert {tmp_path / 'root.pem'}" in command


def test_acme_on_a_plain_main_listener_needs_no_ca_bundle(tmp_path: Path) -> None:
    lines = _lines(tmp_path, {"acme": {"enabled": True, "http01_port": 8402}})
    assert lines["ACME"] == "http://127.0.0.1:8080/acme/directory"
    assert lines["  certbot"].startswith("certbot certonly ")
    assert "--http-01-port 8402" in lines["  certbot"]
    tls = _lines(tmp_path, {"server": {"port": 8443, "tls": {}}, "acme": {"enabled": True}})
    assert tls["  certbot"].startswith(f"REQUESTS_CA_BUNDLE={tmp_path / 'root.pem'} certbot ")
    assert "--server https://127.0.0.1:8443/acme/directory" in tls["  certbot"]


def test_wstep_urls_follow_its_path(tmp_path: Path) -> None:
    lines = _lines(tmp_path, {"wstep": {"enabled": True, "path": "/enroll"}})
    assert lines["CEP"] == "http://127.0.0.1:8080/enroll/CEP"
    assert "certgate wstep user add" in lines["  client"]


def test_ra_fingerprints_in_scepclient_form() -> None:
    shown = [
        ("SCEP RA SHA-256", "0A:1B (ra)"),
        ("other", "x"),
        ("SCEP RA SHA-256", "FF (signature)"),
    ]
    assert ra_hex(shown) == ["0a1b", "ff"]
