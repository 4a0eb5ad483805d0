"""EST test helpers: a gateway configuration with EST labels, a real ``certgate serve``
subprocess, curl as the EST client, and openssl to read the answers."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.gateway_process import gateway_process, healthy
from tests.helpers import (
    TEMPLATES,
    certgate,
    free_port,
    init_gateway,
    require_tool,
)

#: A device template for EST: devices re-enroll when *they* decide (early_renewal = true).
EST_DEVICE_TEMPLATE = (TEMPLATES / "device.toml").read_text()
EST_DEVICE_TEMPLATE = (
    EST_DEVICE_TEMPLATE.replace('name = "device"', 'name = "est-device"')
    .replace(
        'oid = "2.25.229140248001717415336070208339824134280"',
        'oid = "2.25.271386416226090870263346152394227913781"',
    )
    .replace("early_renewal = false", "early_renewal = true")
)
#: An EST registration authority template (EKU id-kp-cmcRA, RFC 7030 §3.7).
EST_RA_TEMPLATE = (
    (TEMPLATES / "device.toml")
    .read_text()
    .replace('name = "device"', 'name = "est-ra"')
    .replace(
        'oid = "2.25.229140248001717415336070208339824134280"',
        'oid = "2.25.190735312209185620212410986052834081203"',
    )
    .replace('ekus = ["client_auth"]', 'ekus = ["client_auth", "1.3.6.1.5.5.7.3.28"]')
)
#: Only members of group "fleet" may enroll (template permissions vs. the EST requester).
EST_FLEET_TEMPLATE = (
    (TEMPLATES / "device.toml")
    .read_text()
    .replace('name = "device"', 'name = "est-fleet"')
    .replace(
        'oid = "2.25.229140248001717415336070208339824134280"',
        'oid = "2.25.112233196950587318009567140346916356352"',
    )
    .replace('enroll = ["*"]', 'enroll = ["group:fleet"]')
)


def templates_dir(tmp: Path) -> Path:
    """The shipped templates plus ``est-device`` (early renewal allowed), ``est-ra`` (RA EKU)
    and ``est-fleet`` (group:fleet only)."""
    directory = tmp / "templates"
    directory.mkdir(exist_ok=True)
    for path in TEMPLATES.glob("*.toml"):
        shutil.copy(path, directory / path.name)
    (directory / "est-device.toml").write_text(EST_DEVICE_TEMPLATE)
    (directory / "est-ra.toml").write_text(EST_RA_TEMPLATE)
    (directory / "est-fleet.toml").write_text(EST_FLEET_TEMPLATE)
    return directory


@dataclass
class Gateway:
    cfg: Path
    http_port: int
    est_port: int
    tmp: Path

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.est_port}/.well-known/est"

    @property
    def ca_file(self) -> Path:
        """Trust for curl: the gateway's CA chain (the EST server certificate chains to it)."""
        path = self.tmp / "ca-chain.pem"
        if not path.exists():
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}/ca/chain.pem", timeout=5
            ) as r:
                path.write_bytes(r.read())
        return path


def write_est_config(tmp: Path, *, est_port: int, extra: str = "", est: str = "") -> Path:
    """A config with EST enabled on ``est_port``; ``est`` is appended inside ``[est]``."""
    templates = templates_dir(tmp)
    cfg = tmp / "certgate.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            [server]
            host = "127.0.0.1"
            port = 0
            access_log = false
            [data]
            dir = "{tmp / "data"}"
            [policy]
            templates_dir = "{templates}"
            [poller]
            interval = "1s"
            lease = "2s"
            [connectors.local]
            type = "local"
            [est]
            enabled = true
            host = "127.0.0.1"
            port = {est_port}
            default_template = "device"
            server_names = ["localhost", "127.0.0.1"]
            """
        )
        + textwrap.dedent(est)
        + textwrap.dedent(extra)
    )
    return cfg


@contextmanager
def serving(cfg: Path, est_port: int, *args: str) -> Iterator[Gateway]:
    """``certgate serve`` as a real process (:func:`tests.gateway_process.gateway_process`)
    until both listeners answer; SIGTERM afterwards."""
    with gateway_process(
        cfg, *args, ready=lambda port: healthy(port) and _tcp_ok(est_port)
    ) as gateway:
        yield Gateway(cfg, gateway.port, est_port, cfg.parent)


@contextmanager
def est_gateway(tmp: Path, est: str, *, user: str, password: str) -> Iterator[Gateway]:
    """The EST test gateway: :func:`write_est_config` with ``est`` on a free EST port, the
    database initialised, one EST user ``user`` with ``password`` (Basic auth), then
    :func:`serving` until the block ends."""
    port = free_port()
    cfg = write_est_config(tmp, est_port=port, est=est)
    init_gateway(cfg)
    certgate(
        "est", "user", "add", user, "--password-env", "PW", "-c", str(cfg),
        env={"PW": password}, check=True,
    )  # fmt: skip
    with serving(cfg, port) as gateway:
        yield gateway


def _tcp_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def curl(gw: Gateway, path: str, *args: str, data: Path | None = None) -> Reply:
    """One curl request to the EST listener (``path`` after /.well-known/est)."""
    exe = require_tool("curl")
    out = gw.tmp / f"curl-body-{time.monotonic_ns()}"
    hdr = gw.tmp / f"curl-headers-{time.monotonic_ns()}"
    cmd = [
        exe,
        "-sS",
        "--max-time",
        "30",
        "--cacert",
        str(gw.ca_file),
        "-o",
        str(out),
        "-D",
        str(hdr),
        "-w",
        "%{http_code}",
        *args,
    ]
    if data is not None:
        cmd += ["--data-binary", f"@{data}"]
    cmd.append(f"{gw.base}{path}")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"curl failed: {proc.stderr}"
    headers: dict[str, str] = {}
    for line in hdr.read_text(errors="replace").splitlines()[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = out.read_bytes() if out.exists() else b""
    for path_ in (out, hdr):
        path_.unlink(missing_ok=True)
    return Reply(int(proc.stdout.strip() or 0), headers, body)


def openssl_req(tmp: Path, name: str, subj: str, *, key: Path | None = None, san: str = "") -> Path:
    """``openssl req`` a new P-256 key (or reuse ``key``) and a base64 (no PEM armour) CSR."""
    exe = require_tool("openssl")
    key = key or tmp / f"{name}.key"
    if not key.exists():
        subprocess.run(
            [exe, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(key)],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
    pem = tmp / f"{name}.csr.pem"
    cmd = [exe, "req", "-new", "-key", str(key), "-subj", subj, "-out", str(pem)]
    if san:
        cmd += ["-addext", f"subjectAltName={san}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    b64 = tmp / f"{name}.csr.b64"
    lines = [ln for ln in pem.read_text().splitlines() if not ln.startswith("-----")]
    b64.write_text("\n".join(lines) + "\n")
    return b64


def p7_to_pem(tmp: Path, body: bytes, name: str) -> Path:
    """A base64 certs-only PKCS#7 body -> PEM certificates, via ``openssl pkcs7 -print_certs``."""
    exe = require_tool("openssl")
    der = tmp / f"{name}.p7.der"
    der.write_bytes(base64.b64decode(b"".join(body.split())))
    pem = tmp / f"{name}.pem"
    proc = subprocess.run(
        [exe, "pkcs7", "-inform", "DER", "-in", str(der), "-print_certs", "-out", str(pem)],
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return pem
