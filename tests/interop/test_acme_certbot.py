"""certbot (from PyPI) against a real `certgate serve`, everything on loopback.

DNS for the validator is pebble-challtestsrv (every name -> 127.0.0.1); certbot answers
http-01 with its standalone server on a free port that `[acme] http01_port` names.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from tests.acme_helpers import acme_config, challtestsrv, serving
from tests.helpers import TEMPLATES, certgate, free_port, init_gateway, require_tool

pytestmark = pytest.mark.interop


def certbot_exe() -> str:
    exe = Path(sys.executable).parent / "certbot"
    if not exe.exists():
        pytest.fail("certbot is a test dependency: pip install -e '.[test]'")
    return str(exe)


@dataclass
class Env:
    tmp: Path
    cfg: Path
    port: int
    http01: int
    dns_port: int

    @property
    def directory(self) -> str:
        return f"http://127.0.0.1:{self.port}/acme/directory"

    def certbot(
        self, *args: str, server: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = [
            certbot_exe(),
            *args,
            "--non-interactive",
            "--no-random-sleep-on-renew",
            "--server",
            server or self.directory,
            "--config-dir",
            str(self.tmp / "cb/config"),
            "--work-dir",
            str(self.tmp / "cb/work"),
            "--logs-dir",
            str(self.tmp / "cb/logs"),
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def standalone(self) -> list[str]:
        return [
            "--standalone",
            "--http-01-port",
            str(self.http01),
            "--http-01-address",
            "127.0.0.1",
        ]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return certgate(*args, "-c", str(self.cfg), env={"CERTGATE_TESTING": "1"})

    def live(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(
            (self.tmp / f"cb/config/live/{name}/cert.pem").read_bytes()
        )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with challtestsrv() as dns:
        port, http01 = free_port(), free_port()
        cfg = acme_config(
            tmp_path,
            f'dns_resolver = "127.0.0.1:{dns.dns_port}"\nhttp01_port = {http01}\n'
            'profiles = ["acme-tls", "approval-required"]\n'
            'processing_retry_after = "1s"\nari_retry_after = "1s"\n',
            port=port,
            external_url=f"http://127.0.0.1:{port}",
            templates=_templates(tmp_path),
        )
        yield Env(tmp_path, cfg, port, http01, dns.dns_port)


def _templates(tmp: Path) -> Path:
    out = tmp / "templates"
    out.mkdir()
    for f in TEMPLATES.glob("*.toml"):
        shutil.copy(f, out / f.name)
    return out


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def test_certbot_registers_obtains_renews_and_revokes(env: Env) -> None:
    with serving(env.cfg, env.port):
        _ok(env.certbot("register", "--agree-tos", "-m", "ops@example.com"))
        _ok(
            env.certbot(
                "certonly", *env.standalone(), "-d", "www.example.test", "-d", "example.test"
            )
        )
        first = env.live("www.example.test")
        sans = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(sans.get_values_for_type(x509.DNSName)) == [
            "example.test",
            "www.example.test",
        ]
        _ok(env.certbot("renew", "--force-renewal", *env.standalone()))
        second = env.live("www.example.test")
        assert second.serial_number != first.serial_number
        cert = env.tmp / "cb/config/live/www.example.test/cert.pem"
        _ok(
            env.certbot(
                "revoke",
                "--cert-path",
                str(cert),
                "--reason",
                "keycompromise",
                "--no-delete-after-revoke",
            )
        )
        shown = json.loads(
            env.cli("certs", "show", format(second.serial_number, "x"), "--json").stdout
        )
        assert shown["status"] == "revoked"
        crl = x509.load_der_x509_crl(_get(env.port, "/ca/crl"))
        assert crl.get_revoked_certificate_by_serial_number(second.serial_number) is not None


def _get(port: int, path: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return bytes(r.read())


def test_certbot_with_external_account_binding(env: Env) -> None:
    text = env.cfg.read_text().replace("[acme]\n", "[acme]\nexternal_account_required = true\n", 1)
    env.cfg.write_text(text)
    init_gateway(env.cfg, env={"CERTGATE_TESTING": "1"})
    created = env.cli("acme", "eab", "create", "--principal", "team-web", "--json")
    assert created.returncode == 0, created.stderr
    eab = json.loads(created.stdout)
    with serving(env.cfg, env.port):
        refused = env.certbot("register", "--agree-tos", "-m", "ops@example.com")
        assert refused.returncode != 0
        assert (
            "externalAccountRequired" in refused.stdout + refused.stderr
            or "external account" in (refused.stdout + refused.stderr).lower()
        )
        _ok(
            env.certbot(
                "register",
                "--agree-tos",
                "-m",
                "ops@example.com",
                # One argument each: a base64url key may start with "-" (argparse then
                # takes it for an option: a 1-in-32 failure).
                f"--eab-kid={eab['kid']}",
                f"--eab-hmac-key={eab['hmac_key']}",
            )
        )
        _ok(env.certbot("certonly", *env.standalone(), "-d", "eab.example.test"))
    requests = json.loads(env.cli("requests", "list", "--json").stdout)
    assert any(r["requester"]["principal"] == "team-web" for r in requests), requests


def test_certbot_waits_on_processing_until_the_cli_approves(env: Env) -> None:
    server = f"http://127.0.0.1:{env.port}/acme/approval-required/directory"
    with serving(env.cfg, env.port):
        _ok(env.certbot("register", "--agree-tos", "-m", "ops@example.com", server=server))
        cmd = [
            certbot_exe(),
            "certonly",
            "--non-interactive",
            "--server",
            server,
            "--config-dir",
            str(env.tmp / "cb/config"),
            "--work-dir",
            str(env.tmp / "cb/work"),
            "--logs-dir",
            str(env.tmp / "cb/logs"),
            *env.standalone(),
            "-d",
            "pending.example.test",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            pending = None
            deadline = time.monotonic() + 60
            while pending is None and time.monotonic() < deadline:
                listed = json.loads(env.cli("requests", "list", "--json").stdout)
                pending = next((r for r in listed if r["state"] == "pending"), None)
                time.sleep(0.5)
            assert pending is not None, "no pending request appeared"
            time.sleep(2)
            assert proc.poll() is None, "certbot gave up instead of waiting on 'processing'"
            _ok(env.cli("requests", "approve", pending["id"]))
            out, _ = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, out[-3000:]
        assert env.live("pending.example.test").serial_number > 0


def test_certbot_renews_on_the_ari_window_after_a_template_major_version_bump(env: Env) -> None:
    with serving(env.cfg, env.port):
        _ok(env.certbot("register", "--agree-tos", "-m", "ops@example.com"))
        _ok(env.certbot("certonly", *env.standalone(), "-d", "ari.example.test"))
        first = env.live("ari.example.test")
        not_due = env.certbot("renew", *env.standalone())
        _ok(not_due)
        assert env.live("ari.example.test").serial_number == first.serial_number
    template = env.tmp / "templates/acme-tls.toml"
    template.write_text(template.read_text().replace("major_version = 100", "major_version = 101"))
    with serving(env.cfg, env.port):
        _ok(env.certbot("renew", *env.standalone()))
        second = env.live("ari.example.test")
    assert second.serial_number != first.serial_number


def test_certbot_dns01_wildcard_through_a_real_dns_server(tmp_path: Path) -> None:
    require_tool("curl")
    with challtestsrv() as dns:
        port = free_port()
        cfg = acme_config(
            tmp_path,
            f'dns_resolver = "127.0.0.1:{dns.dns_port}"\n',
            port=port,
            external_url=f"http://127.0.0.1:{port}",
        )
        env = Env(tmp_path, cfg, port, 0, dns.dns_port)
        hook = tmp_path / "auth-hook.sh"
        hook.write_text(
            "#!/bin/sh\n"
            'exec curl -s -X POST -d "{\\"host\\":\\"_acme-challenge.$CERTBOT_DOMAIN.\\",'
            f'\\"value\\":\\"$CERTBOT_VALIDATION\\"}}" http://127.0.0.1:{dns.mgmt_port}/set-txt\n'
        )
        hook.chmod(0o755)
        with serving(cfg, port):
            _ok(env.certbot("register", "--agree-tos", "-m", "ops@example.com"))
            _ok(
                env.certbot(
                    "certonly",
                    "--manual",
                    "--preferred-challenges",
                    "dns",
                    "--manual-auth-hook",
                    str(hook),
                    "-d",
                    "*.dns.example.test",
                )
            )
        cert = env.live("dns.example.test")
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == ["*.dns.example.test"]
