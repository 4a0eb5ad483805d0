"""Full ACME issuance flows per second: certgate (`serve --workers 2`, SQLite) and Pebble in
the same run, with the same driver.

    .venv/bin/python bench/acme_load.py [--flows 300] [--c16-flows 3000] [--pebble-flows 150]

One flow = newOrder (one fresh name) -> authz (POST-as-GET) -> challenge POST {} -> poll the
authz until valid -> finalize with a fresh P-256 CSR -> poll the order until valid ->
certificate download. Each concurrent worker has its own account (registered before timing),
its own keep-alive connection, and re-uses the Replay-Nonce of its previous response, as real
clients do.

The driver shares the machine's cores with the server under test, so it is kept light: uvloop,
and a minimal HTTP/1.1 client (:class:`Connection`) instead of aiohttp's, which halves the
driver's CPU per flow. Both servers get the same code path. Each run also prints the server's
and the driver's CPU milliseconds per flow (from /proc, so comparable on a busy machine
where the wall-clock rates are not).

Both servers skip challenge validation alike: Pebble with PEBBLE_VA_ALWAYS_VALID=1, certgate
with `[testing] acme_always_valid = true`. Pebble: Debian package, PEBBLE_VA_NOSLEEP=1,
PEBBLE_WFE_NONCEREJECT=0, concurrency 1 only (Debian's 2.4 deadlocks at concurrency >= 4).
Pebble only speaks HTTPS; certgate's listener is plain HTTP (keep-alive makes the TLS
handshake a one-off per connection). Targets (issue #4): certgate c=1 >= 1.0x Pebble c=1;
certgate c=16 >= 3.5x Pebble c=1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Connection:
    """One keep-alive HTTP/1.1 connection (plain or TLS) to the server under test.

    Why not aiohttp's client: the driver shares the two cores with the server, and a
    client session's per-request machinery (URL objects, timers, connection pool, payload
    objects) cost about as much CPU as the ACME signing; this does only what the driver
    needs (Content-Length or chunked bodies, one request at a time) and is the same code for
    certgate and Pebble."""

    def __init__(self, origin: str, ssl_ctx: ssl.SSLContext | None) -> None:
        parts = urlsplit(origin)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl_ctx
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def request(
        self, method: str, url: str, body: bytes = b"", content_type: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request to ``url`` (on this connection's origin); status, headers (names
        in lower case) and body. A kept-alive connection the server closed is reopened."""
        if not url.startswith(self.origin):
            raise ValueError(f"{url} is not on {self.origin}")
        path = url[len(self.origin) :] or "/"
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        data = head.encode() + b"\r\n" + body
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl
                )
            assert self.reader is not None
            self.writer.write(data)
            try:
                status_line = await self.reader.readuntil(b"\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                await self.close()
                if attempt == 2:
                    raise
                continue
            return await self._response(status_line, method)
        raise AssertionError("unreachable")

    async def _response(self, status_line: bytes, method: str) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None
        status = int(status_line.split(b" ", 2)[1])
        raw = await self.reader.readuntil(b"\r\n\r\n")
        headers: dict[str, str] = {}
        for line in raw.decode("latin-1").split("\r\n"):
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    await self._skip_trailers(chunk)
                    break
                chunks.append(chunk[:-2])
            body = b"".join(chunks)
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, body

    async def _skip_trailers(self, first: bytes) -> None:
        assert self.reader is not None
        line = first
        while line != b"\r\n":
            line = await self.reader.readuntil(b"\r\n")


class Worker:
    """One ACME account driving flows sequentially."""

    def __init__(self, http: Connection, directory: dict[str, str]) -> None:
        self.http = http
        self.d = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        n = self.key.public_key().public_numbers()
        self.jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64(n.x.to_bytes(32, "big")),
            "y": b64(n.y.to_bytes(32, "big")),
        }
        self.kid: str | None = None
        self.nonce: str | None = None

    async def _nonce(self) -> str:
        if self.nonce is None:
            _, headers, _ = await self.http.request("HEAD", self.d["newNonce"])
            self.nonce = headers["replay-nonce"]
        nonce, self.nonce = self.nonce, None
        return nonce

    async def post(self, url: str, payload: Any = None) -> tuple[int, dict[str, str], bytes]:
        for _ in range(3):
            header: dict[str, Any] = {"alg": "ES256", "nonce": await self._nonce(), "url": url}
            if self.kid:
                header["kid"] = self.kid
            else:
                header["jwk"] = self.jwk
            p = b64(json.dumps(header).encode())
            body = "" if payload is None else b64(json.dumps(payload).encode())
            r_, s_ = decode_dss_signature(
                self.key.sign(f"{p}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
            )
            sig = b64(r_.to_bytes(32, "big") + s_.to_bytes(32, "big"))
            data = json.dumps({"protected": p, "payload": body, "signature": sig}).encode()
            status, headers, content = await self.http.request(
                "POST", url, data, "application/jose+json"
            )
            self.nonce = headers.get("replay-nonce")
            if status == 400 and b"badNonce" in content:
                continue
            return status, headers, content
        raise RuntimeError("badNonce three times")

    async def register(self) -> None:
        status, headers, body = await self.post(
            self.d["newAccount"], {"termsOfServiceAgreed": True}
        )
        assert status in (200, 201), body
        self.kid = headers["location"]

    async def flow(self, name: str) -> None:
        status, headers, body = await self.post(
            self.d["newOrder"], {"identifiers": [{"type": "dns", "value": name}]}
        )
        assert status == 201, body
        order_url, order = headers["location"], json.loads(body)
        for authz_url in order["authorizations"]:
            _, _, body = await self.post(authz_url)
            authz = json.loads(body)
            if authz["status"] != "valid":
                ch = next(c for c in authz["challenges"] if c["type"] == "http-01")
                status, _, body = await self.post(ch["url"], {})
                assert status == 200, body
                while authz["status"] == "pending":
                    _, _, body = await self.post(authz_url)
                    authz = json.loads(body)
                assert authz["status"] == "valid", authz
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        status, _, body = await self.post(
            order["finalize"], {"csr": b64(csr.public_bytes(serialization.Encoding.DER))}
        )
        assert status == 200, body
        order = json.loads(body)
        while order["status"] in ("processing", "ready", "pending"):
            await asyncio.sleep(0.005)
            _, _, body = await self.post(order_url)
            order = json.loads(body)
        assert order["status"] == "valid", order
        status, _, body = await self.post(order["certificate"])
        assert status == 200 and b"BEGIN CERTIFICATE" in body


async def drive(
    directory_url: str, flows: int, concurrency: int, ssl_ctx: Any, tag: str
) -> dict[str, float]:
    connections = [Connection(directory_url, ssl_ctx) for _ in range(concurrency)]
    try:
        status, _, body = await connections[0].request("GET", directory_url)
        assert status == 200, body
        directory = json.loads(body)
        workers = [Worker(c, directory) for c in connections]
        await asyncio.gather(*(w.register() for w in workers))
        # One untimed flow per worker, concurrently: every account's key and connection is
        # warm before the clock starts.
        await asyncio.gather(
            *(w.flow(f"warmup{n}-{tag}.bench.example.test") for n, w in enumerate(workers))
        )
        latencies: list[float] = []
        counter = iter(range(flows))

        async def run(w: Worker) -> None:
            for i in counter:
                t = time.perf_counter()
                await w.flow(f"f{i}-{tag}.bench.example.test")
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(run(w) for w in workers))
        elapsed = time.perf_counter() - start
    finally:
        for c in connections:
            await c.close()
    latencies.sort()
    return {
        "rate": flows / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run the driver on uvloop when installed (the server uses it too): the driver shares
    the machine's cores with the server, so its own event-loop overhead lowers the rate."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of the gateway
        return asyncio.run(coro)
    return uvloop.run(coro)


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (from /proc/PID/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (the serve process and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def measured(
    proc: subprocess.Popen[Any],
    directory_url: str,
    flows: int,
    concurrency: int,
    ssl_ctx: Any,
    tag: str,
) -> dict[str, float]:
    """:func:`drive`, plus the server's and the driver's CPU milliseconds per flow."""
    pids = _tree(proc.pid)
    server0, driver0 = _cpu_seconds(pids), time.process_time()
    result = run_loop(drive(directory_url, flows, concurrency, ssl_ctx, tag))
    server1, driver1 = _cpu_seconds(pids), time.process_time()
    # Registration and the warm-up flows are included: 2 x concurrency flows' worth of extra
    # requests, small against ``flows`` (and alike for both servers).
    result["server_ms"] = (server1 - server0) * 1000 / flows
    result["driver_ms"] = (driver1 - driver0) * 1000 / flows
    return result


def wait_port(port: int, proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_certgate(tmp: Path, workers: int) -> tuple[subprocess.Popen[Any], str]:
    port = free_port()
    cfg = tmp / "certgate.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        [server]
        host = "127.0.0.1"
        port = {port}
        access_log = false
        external_url = "http://127.0.0.1:{port}"
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
    )
    # The server's stderr goes to a file (the child keeps its own descriptor), so a failed
    # start can say why.
    with (tmp / "certgate.stderr").open("w+b") as stderr:
        proc = subprocess.Popen(
            [
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
            wait_port(port, proc)
        except RuntimeError as exc:
            stop(proc)
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"certgate: {exc}; its stderr ends with:\n{tail}") from None
    # serve binds the port before it prepares the data directory (CA, keys), so an open port
    # is not yet a serving gateway: wait for /healthz, then let every worker finish starting
    deadline = time.monotonic() + 60
    while not _healthz(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError("certgate did not answer /healthz")
        time.sleep(0.2)
    time.sleep(1.0)
    return proc, f"http://127.0.0.1:{port}/acme/directory"


def _healthz(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def start_pebble(tmp: Path) -> tuple[subprocess.Popen[Any], str]:
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
    }
    proc = subprocess.Popen(
        [exe, "-config", str(tmp / "pebble.json")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, proc)
    return proc, f"https://127.0.0.1:{port}/dir"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=300, help="certgate flows at c=1")
    parser.add_argument(
        "--c16-flows",
        type=int,
        default=3000,
        help="certgate flows at c=16 (a few seconds: at 300 the run lasts under a second and "
        "the ramp-down of the last flows weighs in)",
    )
    parser.add_argument("--pebble-flows", type=int, default=150)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here (bench/charts.py)")
    args = parser.parse_args()
    no_verify = ssl.create_default_context()
    no_verify.check_hostname = False
    no_verify.verify_mode = ssl.CERT_NONE
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "cg").mkdir()
        proc, url = start_pebble(tmp)
        try:
            results["pebble c=1"] = measured(proc, url, args.pebble_flows, 1, no_verify, "p1")
        finally:
            stop(proc)
        proc, url = start_certgate(tmp / "cg", args.workers)
        try:
            results["certgate c=1"] = measured(proc, url, args.flows, 1, None, "c1")
            results["certgate c=16"] = measured(proc, url, args.c16_flows, 16, None, "c16")
        finally:
            stop(proc)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"{'run':<16}{'flows/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
        f"{'server CPU ms/flow':>20}{'driver CPU ms/flow':>20}"
    )
    for name, r in results.items():
        print(
            f"{name:<16}{r['rate']:>10.1f}{r['p50']:>10.1f}{r['p99']:>10.1f}"
            f"{r['server_ms']:>20.2f}{r['driver_ms']:>20.2f}"
        )
    base = results["pebble c=1"]["rate"]
    print(
        f"certgate c=1  / pebble c=1: {results['certgate c=1']['rate'] / base:.2f}x (target >= 1.0)"
    )
    print(
        f"certgate c=16 / pebble c=1: {results['certgate c=16']['rate'] / base:.2f}x"
        " (target >= 3.5)"
    )
    if args.json:
        from charts import write_result  # bench/charts.py, beside this script

        rows = [
            {"label": name, "rate": r["rate"], "p50_ms": r["p50"], "p99_ms": r["p99"]}
            for name, r in results.items()
        ]
        write_result(args.json, "acme_load", "complete issuance flows/s", rows)


if __name__ == "__main__":
    main()
