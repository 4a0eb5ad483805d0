"""lego (Debian package) against a real `certgate serve`: http-01, tls-alpn-01, dns-01
through a real DNS server (pebble-challtestsrv), renew, revoke, EAB. Loopback only."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from tests.acme_helpers import ChallTestSrv, acme_config, challtestsrv, serving
from tests.helpers import certgate, free_port, init_gateway, require_tool

pytestmark = pytest.mark.interop


@dataclass
class Env:
    tmp: Path
    cfg: Path
    port: int
    http01: int
    tls01: int
    dns: ChallTestSrv

    def lego(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        exe = require_tool("lego")
        cmd = [
            exe,
            "--server",
            f"http://127.0.0.1:{self.port}/acme/directory",
            "--accept-tos",
            "-m",
            "ops@example.com",
            "--path",
            str(self.tmp / "lego"),
            *args,
        ]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
        )

    def cert(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(
            (self.tmp / f"lego/certificates/{name}.crt").read_bytes()
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return certgate(*args, "-c", str(self.cfg), env={"CERTGATE_TESTING": "1"})


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    require_tool("lego")
    with challtestsrv() as dns:
        port, http01, tls01 = free_port(), free_port(), free_port()
        cfg = acme_config(
            tmp_path,
            f'dns_resolver = "127.0.0.1:{dns.dns_port}"\nhttp01_port = {http01}\n'
            f"tls_alpn01_port = {tls01}\n",
            port=port,
            external_url=f"http://127.0.0.1:{port}",
        )
        yield Env(tmp_path, cfg, port, http01, tls01, dns)


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def test_lego_http01_obtains_renews_and_revokes(env: Env) -> None:
    http = ["--http", "--http.port", f"127.0.0.1:{env.http01}"]
    with serving(env.cfg, env.port):
        _ok(env.lego(*http, "-d", "web.example.test", "run"))
        first = env.cert("web.example.test")
        _ok(
            env.lego(*http, "-d", "web.example.test", "renew", "--days", "365", "--no-random-sleep")
        )
        second = env.cert("web.example.test")
        assert second.serial_number != first.serial_number
        _ok(env.lego("-d", "web.example.test", "revoke"))
    shown = json.loads(env.cli("certs", "show", format(second.serial_number, "x"), "--json").stdout)
    assert shown["status"] == "revoked"


def test_lego_tls_alpn01(env: Env) -> None:
    with serving(env.cfg, env.port):
        _ok(
            env.lego(
                "--tls", "--tls.port", f"127.0.0.1:{env.tls01}", "-d", "alpn.example.test", "run"
            )
        )
    assert env.cert("alpn.example.test").serial_number > 0


def test_lego_dns01_wildcard_through_a_real_dns_server(env: Env) -> None:
    hook = env.tmp / "dns-hook.sh"
    hook.write_text(
        "#!/bin/sh\n"
        '[ "$1" = present ] || exit 0\n'
        f'exec curl -s -X POST -d "{{\\"host\\":\\"$2\\",\\"value\\":\\"$3\\"}}" '
        f"http://127.0.0.1:{env.dns.mgmt_port}/set-txt\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    require_tool("curl")
    dns = ["--dns", "exec", "--dns.disable-cp", "--dns.resolvers", f"127.0.0.1:{env.dns.dns_port}"]
    with serving(env.cfg, env.port):
        _ok(env.lego(*dns, "-d", "*.wild.example.test", "run", env={"EXEC_PATH": str(hook)}))
    cert = env.cert("_.wild.example.test")
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["*.wild.example.test"]


def test_lego_registers_with_external_account_binding(env: Env) -> None:
    env.cfg.write_text(
        env.cfg.read_text().replace("[acme]\n", "[acme]\nexternal_account_required = true\n", 1)
    )
    init_gateway(env.cfg, env={"CERTGATE_TESTING": "1"})
    eab = json.loads(env.cli("acme", "eab", "create", "--principal", "k8s", "--json").stdout)
    http = ["--http", "--http.port", f"127.0.0.1:{env.http01}"]
    with serving(env.cfg, env.port):
        refused = env.lego(*http, "-d", "eab.example.test", "run")
        assert refused.returncode != 0
        _ok(
            env.lego(
                "--eab",
                # One argument each: a base64url key may start with "-".
                f"--kid={eab['kid']}",
                f"--hmac={eab['hmac_key']}",
                *http,
                "-d",
                "eab.example.test",
                "run",
            )
        )
    assert env.cert("eab.example.test").serial_number > 0
