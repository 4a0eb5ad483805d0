"""Shared test helpers: CSRs built with cryptography, configs written to tmp dirs, peers.
Certificates and keys come from :mod:`tests.pki_helpers`."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from tests.pki_helpers import ec_key

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "conf" / "templates"


def make_csr(
    key: object | None = None,
    *,
    cn: str | None = None,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    subject: x509.Name | None = None,
    hash_alg: hashes.HashAlgorithm | None = None,
) -> x509.CertificateSigningRequest:
    key = key or ec_key()
    name = subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hash_alg or hashes.SHA256())  # type: ignore[arg-type]


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def write_config(tmp: Path, extra: str = "", *, port: int = 0) -> Path:
    """A configuration using the shipped templates and a data dir inside ``tmp``."""
    cfg = tmp / "certgate.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            [server]
            host = "127.0.0.1"
            port = {port}
            access_log = false
            [data]
            dir = "{tmp / "data"}"
            [policy]
            templates_dir = "{TEMPLATES}"
            [poller]
            interval = "1s"
            lease = "2s"
            [connectors.local]
            type = "local"
            crl_urls = ["http://127.0.0.1:{port or 8080}/ca/crl"]
            """
        )
        + textwrap.dedent(extra)
    )
    return cfg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def certgate(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (as an operator would)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=REPO,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"certgate {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def init_gateway(cfg: Path, env: dict[str, str] | None = None) -> None:
    """``certgate init``: create the data directory, database and CA that operator commands
    act on (they never create one themselves). In-process unless ``env`` is needed or an
    event loop is running; then as a real CLI process."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        if env is None:
            from gateway.cli import main

            assert main(["init", "-c", str(cfg)]) == 0, f"certgate init -c {cfg} failed"
            return
    certgate("init", "-c", str(cfg), env=env, check=True)


def require_tool(name: str) -> str:
    """Path of a real peer program; skip if missing, fail when CERTGATE_REQUIRE_PEERS=1."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (../shared/peers/install.sh installs it)"
        if os.environ.get("CERTGATE_REQUIRE_PEERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    exe = require_tool("openssl")
    return subprocess.run([exe, *args], capture_output=True, input=input, timeout=30)


def http_ok(url: str) -> bool:
    """True when ``url`` answers 2xx within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def wait_until_up(
    proc: subprocess.Popen[Any],
    ready: Callable[[], bool],
    output: Callable[[], str],
    *,
    timeout: float = 30,
    message: str = "gateway did not become healthy",
) -> None:
    """Poll ``ready`` until it holds; fail at once with the process output if it exited."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {output()}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM (the gateway's graceful shutdown), SIGKILL if it is still there after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
