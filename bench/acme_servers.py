"""The servers under test for bench/acme_load.py: certgate (`serve`, SQLite, challenge
validation skipped by `[testing] acme_always_valid`) and Pebble (Debian package, validation
skipped by PEBBLE_VA_ALWAYS_VALID), started on free ports; their CPU time read from /proc."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from procs import cpu_seconds, free_port, process_tree, stop, wait_port

__all__ = ["cpu_seconds", "free_port", "process_tree", "start_certgate", "start_pebble", "stop"]

REPO = Path(__file__).resolve().parent.parent


def start_certgate(
    tmp: Path,
    workers: int,
    *,
    tls: bool = False,
    store_url: str = "",
    prefix: tuple[str, ...] = (),
    timeout: float = 60,
) -> tuple[subprocess.Popen[Any], str]:
    """``certgate serve`` with ACME on: plain HTTP, or HTTPS with a certificate its CA issues
    for 127.0.0.1 (``tls``); SQLite in ``tmp``, or the database at ``store_url``. ``prefix``
    runs it under another program (bench/acme_callgrind.py: valgrind), ``timeout`` bounds its
    start in seconds."""
    port = free_port()
    scheme = "https" if tls else "http"
    extra = '[server.tls]\nnames = ["localhost", "127.0.0.1"]\n' if tls else ""
    if store_url:
        extra += f'[store]\nurl = "{store_url}"\n'
    cfg = tmp / "certgate.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        [server]
        host = "127.0.0.1"
        port = {port}
        access_log = false
        external_url = "{scheme}://127.0.0.1:{port}"
        [data]
        dir = "{tmp / "data"}"
        [policy]
        templates_dir = "{REPO / "conf" / "templates"}"
        [connectors.local]
        type = "local"
        [logging]
        level = "WARNING"
        [acme]
        enabled = true
        default_template = "acme-tls"
        rate_limit_account = 0
        rate_limit_ip = 0
        rate_limit_new_orders = 0
        rate_limit_new_accounts = 0
        [testing]
        enabled = true
        acme_always_valid = true
        """)
        + extra
    )
    # The server's stderr goes to a file (the child keeps its own descriptor), so a failed
    # start can say why.
    with (tmp / "certgate.stderr").open("w+b") as stderr:
        proc = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "-c",
                str(cfg),
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            cwd=REPO,
            env={**os.environ, "CERTGATE_TESTING": "1"},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            wait_port(port, proc, timeout)
        except RuntimeError as exc:
            stop(proc)
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"certgate: {exc}; its stderr ends with:\n{tail}") from None
    # serve binds the port before it prepares the data directory (CA, keys), so an open port
    # is not yet a serving gateway: wait for /healthz, then let every worker finish starting
    deadline = time.monotonic() + timeout
    while not _healthz(port, tls):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError("certgate did not answer /healthz")
        time.sleep(0.2)
    time.sleep(1.0)
    return proc, f"{scheme}://127.0.0.1:{port}/acme/directory"


def _healthz(port: int, tls: bool = False) -> bool:
    import ssl
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as reply:
            return reply.status == 200
    except OSError:
        return False


def start_pebble(
    tmp: Path,
    *,
    prefix: tuple[str, ...] = (),
    env_extra: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[subprocess.Popen[Any], str]:
    """Pebble (Debian) with validation skipped, on HTTPS with a self-signed certificate for
    127.0.0.1; ``prefix`` runs it under another program (bench/acme_callgrind.py: valgrind),
    with ``env_extra`` added to its environment, and ``timeout`` bounds its start in seconds."""
    exe = shutil.which("pebble")
    if exe is None:
        raise SystemExit("pebble is not installed (../shared/peers/install.sh)")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")),
                ]
            ),
            False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp / "pebble.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "pebble.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    port = free_port()
    (tmp / "pebble.json").write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{port}",
                    "managementListenAddress": f"127.0.0.1:{free_port()}",
                    "certificate": str(tmp / "pebble.crt"),
                    "privateKey": str(tmp / "pebble.key"),
                    "httpPort": free_port(),
                    "tlsPort": free_port(),
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    env = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
        "PEBBLE_VA_ALWAYS_VALID": "1",
        "PEBBLE_AUTHZREUSE": "0",
        **(env_extra or {}),
    }
    proc = subprocess.Popen(
        [*prefix, exe, "-config", str(tmp / "pebble.json")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, proc, timeout)
    return proc, f"https://127.0.0.1:{port}/dir"
