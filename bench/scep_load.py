"""SCEP enrollment load: PKCSReq per second against ``certgate serve --workers N`` and, with the
same driver, against micromdm's ``scepserver`` (Debian ``scep``) in a private network namespace.

Every request uses a fresh RSA-2048 client key (bench/peers.py: one of a pool of keys,
bench/keypool.py), AES-128-CBC, RSA PKCS#1 v1.5 key transport, SHA-256 and POST, the
transactionID derived from the key (as real clients derive it) and a subject no earlier batch
used; keys, CSRs and pkiMessages are built before
the clock starts. Every reply is
decrypted and its certificate's serial recorded, so failures and duplicate serials are counted.

    .venv/bin/python bench/scep_load.py [--requests 200] [--workers 2] [--json out.json]

The micromdm half re-runs this script inside ``unshare -n`` (``--micromdm-inside``), because
scepserver listens on all interfaces and must only be reachable on a private loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from keypool import batch_tag  # noqa: E402  (bench/keypool.py, beside this script)

from gateway.pkix import cms  # noqa: E402
from tests import scep_client as sc  # noqa: E402
from tests.scep_helpers import STATIC_PASSWORD, scep_config, serving  # noqa: E402

ENDPOINT = """
[scep.endpoints.bench]
template = "scep-device"
challenge = "static"
challenge_password = "file:static.txt"
"""
MICROMDM_PORT = 18780
MICROMDM_CHALLENGE = "secret"


@dataclass
class Result:
    target: str
    concurrency: int
    requests: int
    seconds: float
    ok: int = 0
    failures: int = 0
    duplicate_serials: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)  # the first few failures, why

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, object]:
        lat = sorted(self.latencies_ms) or [0.0]

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1)

        out = {k: v for k, v in asdict(self).items() if k != "latencies_ms"}
        out.update(
            rate=round(self.rate, 1),
            p50_ms=pct(0.50),
            p90_ms=pct(0.90),
            p99_ms=pct(0.99),
            mean_ms=round(statistics.fmean(lat), 1),
        )
        return out


def _prepare_one(args: tuple[bytes, str, str, bytes | None]) -> tuple[bytes, bytes, bytes]:
    """(pkiMessage, client key PEM, signer DER) for one request (runs in a worker process):
    with the key ``key_pem``, or a fresh one."""
    recipient_der, challenge, name, key_pem = args
    recipient = x509.load_der_x509_certificate(recipient_der)
    if key_pem is None:
        key = sc.rsa_key(2048)
    else:
        loaded = serialization.load_pem_private_key(key_pem, None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        key = loaded
    client = sc.Client(recipient, key)
    csr = sc.make_csr(key, name, challenge=challenge)
    der = client.pkcs_req(
        csr, cipher="aes128_cbc", digest="sha256", transaction_id=transaction_id(key)
    )
    assert client.signer is not None
    return der, _pem(key), client.signer.public_bytes(serialization.Encoding.DER)


def transaction_id(key: rsa.RSAPrivateKey) -> str:
    """The transactionID real clients send: fixed per client (RFC 8894 §3.2.1.1: unique but
    not necessarily random, e.g. the device's EUI; jscep, xipki and sscep hash the public
    key), here SHA-256 of the SubjectPublicKeyInfo in hex. A key that enrols again reuses its
    transactionID, as those clients do."""
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM (to cross a process boundary)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _rsa_pem(_: int) -> bytes:
    return _pem(sc.rsa_key(2048))


_POOLS: dict[int, list[bytes]] = {}


def key_pool(size: int) -> list[bytes]:
    """``size`` RSA-2048 client keys (PEM), made once per process on all cores."""
    if size not in _POOLS:
        with ProcessPoolExecutor() as pool:
            _POOLS[size] = list(pool.map(_rsa_pem, range(size)))
    return _POOLS[size]


def prepare(
    recipient: x509.Certificate, challenge: str, count: int, keys: list[bytes] | None = None
) -> list[sc.Client | bytes]:
    """``count`` ready-to-send messages with the client identity to read each reply; client
    keys from ``keys`` (PEM, round-robin) or fresh ones. Each subject is one no earlier batch
    used (bench/keypool.py), so each request is a new enrollment."""
    der = recipient.public_bytes(serialization.Encoding.DER)
    tag = batch_tag()
    jobs = [
        (der, challenge, f"bench-{tag}-{i}", keys[i % len(keys)] if keys else None)
        for i in range(count)
    ]
    with ProcessPoolExecutor() as pool:
        made = list(pool.map(_prepare_one, jobs))
    out: list[sc.Client | bytes] = []
    for message, key_pem, signer_der in made:
        key = serialization.load_pem_private_key(key_pem, None)
        assert isinstance(key, rsa.RSAPrivateKey)
        out.append(sc.Client(recipient, key, x509.load_der_x509_certificate(signer_der)))
        out.append(message)
    return out


def _debug(target: str, text: str, result: Result | None = None) -> None:
    if result is not None and len(result.error_samples) < 5:
        result.error_samples.append(text[:200])
    if os.environ.get("SCEP_BENCH_DEBUG"):
        print(f"{target}: {text}", file=sys.stderr)


async def run(url: str, target: str, prepared: list[sc.Client | bytes], concurrency: int) -> Result:
    pairs = [(prepared[i], prepared[i + 1]) for i in range(0, len(prepared), 2)]
    result = Result(target, concurrency, len(pairs), 0.0)
    serials: set[int] = set()
    queue: asyncio.Queue[tuple[sc.Client | bytes, sc.Client | bytes]] = asyncio.Queue()
    for pair in pairs:
        queue.put_nowait(pair)
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency)

    replies: list[tuple[sc.Client, int, bytes]] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        # Only send and receive while the clock runs; replies are checked afterwards, so the
        # driver's own CMS work does not compete with the server for the CPU.
        while not queue.empty():
            client, message = queue.get_nowait()
            assert isinstance(client, sc.Client) and isinstance(message, bytes)
            started = time.perf_counter()
            try:
                async with session.post(
                    f"{url}?operation=PKIOperation",
                    data=message,
                    headers={"Content-Type": "application/x-pki-message"},
                ) as response:
                    body = await response.read()
                    replies.append((client, response.status, body))
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                result.failures += 1
                _debug(target, f"{type(exc).__name__}: {exc}", result)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)

    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    for client, status, body in replies:
        if status != 200:
            result.failures += 1
            _debug(target, f"HTTP {status}: {body[:200]!r}", result)
            continue
        try:
            rep = client.read(body)
        except Exception as exc:  # a broken reply is a failure to count, not a crash
            result.failures += 1
            _debug(target, f"{type(exc).__name__}: {exc}", result)
            continue
        if rep.status != 0 or not rep.certificates:
            result.failures += 1
            why = f"pkiStatus {rep.status} failInfo {rep.fail_info} {rep.fail_text}"
            _debug(target, why, result)
            continue
        serial = rep.certificates[0].serial_number
        if serial in serials:
            result.duplicate_serials += 1
        serials.add(serial)
        result.ok += 1
    return result


async def _ca_certs(url: str) -> tuple[x509.Certificate, ...]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}?operation=GetCACert") as response:
            body = await response.read()
            if response.content_type == "application/x-x509-ca-cert":
                return (x509.load_der_x509_certificate(body),)
    return cms.read_certs_only(body)[0]


def bench_certgate(requests: int, workers: int) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="scep-bench-") as tmp:
        cfg = scep_config(Path(tmp), ENDPOINT)
        text = cfg.read_text().replace("[poller]\n", "[poller]\nenabled = false\n", 1)
        cfg.write_text(text.replace("[logging]", "[logging]"))
        with serving(cfg, "--workers", str(workers)) as port:
            url = f"http://127.0.0.1:{port}/scep/bench/pkiclient.exe"
            ra = asyncio.run(_ca_certs(url))[0]
            results = []
            for concurrency, count in ((1, max(20, requests // 4)), (16, requests)):
                prepared = prepare(ra, STATIC_PASSWORD, count)
                results.append(asyncio.run(run(url, "certgate", prepared, concurrency)))
            return results


def micromdm_inside(requests: int, out: Path) -> None:
    """Runs inside ``unshare -n``: start scepserver on the private loopback and measure."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.TemporaryDirectory(prefix="micromdm-") as tmp:
        depot = Path(tmp) / "depot"
        subprocess.run(
            [
                "scepserver",
                "ca",
                "-init",
                "-depot",
                str(depot),
                "-key-password",
                "pw",
                "-keySize",
                "2048",
            ],
            check=True,
            capture_output=True,
        )
        log = (Path(tmp) / "server.log").open("w")
        server = subprocess.Popen(
            [
                "scepserver",
                "-depot",
                str(depot),
                "-port",
                str(MICROMDM_PORT),
                "-capass",
                "pw",
                "-challenge",
                MICROMDM_CHALLENGE,
                "-allowrenew",
                "0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{MICROMDM_PORT}/scep"
            deadline = time.monotonic() + 20
            ca = None
            while ca is None and time.monotonic() < deadline:
                try:
                    ca = asyncio.run(_ca_certs(url))[0]
                except (aiohttp.ClientError, OSError):
                    time.sleep(0.1)
            assert ca is not None, "scepserver did not start"
            results = []
            for concurrency, count in ((1, max(20, requests // 4)), (4, max(20, requests // 4))):
                prepared = prepare(ca, MICROMDM_CHALLENGE, count)
                results.append(asyncio.run(run(url, "micromdm", prepared, concurrency)))
        finally:
            server.terminate()
            server.wait(timeout=10)
    out.write_text(json.dumps([r.summary() for r in results]))


def bench_micromdm(requests: int) -> list[dict[str, object]]:
    if shutil.which("scepserver") is None or shutil.which("unshare") is None:
        print("micromdm scepserver or unshare missing: skipping the comparison", file=sys.stderr)
        return []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "micromdm.json"
        subprocess.run(
            [
                "unshare",
                "-n",
                sys.executable,
                __file__,
                "--micromdm-inside",
                str(out),
                "--requests",
                str(requests),
            ],
            check=True,
            cwd=REPO,
        )
        data: list[dict[str, object]] = json.loads(out.read_text())
        return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests at concurrency 16")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--micromdm-inside", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.micromdm_inside:
        micromdm_inside(args.requests, args.micromdm_inside)
        return 0
    rows = [r.summary() for r in bench_certgate(args.requests, args.workers)]
    rows += bench_micromdm(args.requests)
    command = " ".join([".venv/bin/python", "bench/scep_load.py", *sys.argv[1:]])
    print(f"# {command}")
    print(f"# certgate serve --workers {args.workers}; RSA-2048 clients, AES-128, SHA-256, POST")
    header = (
        "target",
        "concurrency",
        "requests",
        "ok",
        "failures",
        "duplicate_serials",
        "rate",
        "p50_ms",
        "p90_ms",
        "p99_ms",
    )
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[h]) for h in header))
    by = {(str(r["target"]), int(str(r["concurrency"]))): float(str(r["rate"])) for r in rows}
    base = by.get(("micromdm", 1))
    if base:
        print(f"certgate c=1  / micromdm c=1 : {by[('certgate', 1)] / base:.2f}x (target >= 1.0x)")
        print(f"certgate c=16 / micromdm c=1 : {by[('certgate', 16)] / base:.2f}x (target >= 2.0x)")
    if args.json:
        from charts import write_result  # bench/charts.py, beside this script

        write_result(args.json, "scep_load", "PKCSReq enrollments/s", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
