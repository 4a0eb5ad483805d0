"""`certgate serve` as a real process: health, readiness, CA publication, workers, shutdown;
and what is HTTP behaviour only, through aiohttp's test client on the real app."""

from __future__ import annotations

import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509

from gateway.config import load_config
from gateway.server.app import create_app
from tests.gateway_process import GatewayProcess, gateway_process
from tests.helpers import certgate, init_gateway, write_config


@contextmanager
def serving(
    cfg: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[GatewayProcess, int]]:
    with gateway_process(cfg, *args, env=env) as gateway:
        yield gateway, gateway.port


def get(port: int, path: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_serve_answers_healthz_readyz_and_prints_url_and_fingerprint(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    with serving(cfg) as (proc, port):
        status, body, headers = get(port, "/healthz")
        assert status == 200 and b"ok" in body
        assert headers.get("X-Request-ID")
        status, body, _ = get(port, "/readyz")
        assert status == 200, body
        status, body, _ = get(port, "/ca/chain.pem")
        chain = x509.load_pem_x509_certificates(body)
        assert len(chain) == 2 and chain[0].issuer == chain[1].subject
        status, body, _ = get(port, "/ca/crl")
        assert status == 200
        crl = x509.load_der_x509_crl(body)
        assert crl.issuer == chain[0].subject and len(crl) == 0
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=15) == 0
        out = proc.output()
    assert f"http://127.0.0.1:{port}" in out
    assert "root CA SHA-256" in out and ":" in out.split("root CA SHA-256")[1].split()[0]
    assert f"http://127.0.0.1:{port}/api/v1/ (certgate admin token create)" in out
    assert "/console/" not in out  # served only on a TLS main listener


async def test_oversize_body_gets_413_and_server_keeps_serving(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    """HTTP behaviour: the real app through aiohttp's test client, no process."""
    client = await aiohttp_client(await create_app(load_config(write_config(tmp_path))))
    try:
        r = await client.post("/healthz", data=b"x" * (2 * 1024 * 1024))
        status = r.status
    except aiohttp.ClientError:
        status = 413  # the server may close before reading everything
    assert status in (405, 413)
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/nope")).status == 404


def test_workers_share_one_port(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    with serving(cfg, "--workers", "2") as (proc, port):
        pids = set()
        for _ in range(20):
            status, _, _ = get(port, "/readyz")
            assert status == 200
        children = subprocess.run(
            ["pgrep", "-P", str(proc.proc.pid)], capture_output=True, text=True
        ).stdout.split()
        pids.update(children)
        assert len(pids) >= 2


def test_wrong_ca_passphrase_refuses_to_start_with_clear_message(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        """
        """,
    )
    init_gateway(cfg, env={"CERTGATE_CA_PASSPHRASE": "correct horse battery staple"})
    proc = certgate(
        "serve", "-c", str(cfg), "--port", "0", env={"CERTGATE_CA_PASSPHRASE": "wrong"}, timeout=30
    )
    assert proc.returncode == 2
    assert "passphrase" in proc.stderr.lower() and "Traceback" not in proc.stderr
