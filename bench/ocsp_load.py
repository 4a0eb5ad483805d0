"""OCSP responder load: certgate's /ocsp against ``openssl ocsp -port`` (the reference
responder), same CA, same delegated signer (certgate's own responder certificate and key,
handed to openssl), same index (an openssl ``index.txt`` written from certgate's inventory),
same request set, same driver; runs interleaved A,B,A,B at each concurrency.

    .venv/bin/python bench/ocsp_load.py [--certs 200] [--n 2000] [--rounds 2]
                                         [--concurrency 1 4 16]

Prints OCSP responses per second and the server's CPU milliseconds per response (utime +
stime of the server process from /proc, before and after each run). Requests are POSTs of
DER OCSPRequests with a fresh nonce each (so nothing can be served from a cache: every answer
is looked up and signed), a third of them about revoked certificates and a tenth about serials
never issued, prepared before the clock starts. Every request opens its own connection
(``openssl ocsp`` answers one request per connection), with the same aiohttp client for both.
certgate runs ``certgate serve`` (one process, SQLite store) as an operator would; both
servers run throughout and the idle one costs nothing. The driver shares the machine's cores.
``openssl ocsp -port`` listens on every interface, so the whole run happens in a network
namespace of its own with only loopback (``unshare -n``, root).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_INSIDE = "OCSP_BENCH_NETNS"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, port: int) -> Path:
    cfg = tmp / "certgate.toml"
    cfg.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}
access_log = false
[data]
dir = "{tmp / "data"}"
[policy]
templates_dir = "{ROOT / "conf" / "templates"}"
[poller]
enabled = false
[ocsp]
signer = "delegated"
response_validity = "1h"
"""
    )
    return cfg


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live children (/proc/<pid>/stat fields 14, 15)."""
    total = 0.0
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                pids.append(int(entry))
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return total


async def populate(cfg: Path, count: int) -> tuple[list[int], list[int]]:
    """Issue ``count`` certificates in-process (the same service a protocol uses) and revoke
    every third one; the serials issued and those revoked."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from gateway.config import load_config
    from gateway.model import EnrollmentRequest, Issued, RevocationReason
    from gateway.server.wiring import build
    from gateway.service import local_requester

    components = await build(load_config(cfg), start_service=False, startup_warnings=False)
    serials: list[int] = []
    revoked: list[int] = []
    try:
        key = ec.generate_private_key(ec.SECP256R1())
        for i in range(count):
            name = f"host{i}.bench.test"
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                .sign(key, hashes.SHA256())
            )
            outcome = await components.service.enroll(
                EnrollmentRequest(
                    csr=csr,
                    template="tls-server",
                    requester=local_requester("bench"),
                    transaction_id=f"ocsp-bench-{i}",
                )
            )
            assert isinstance(outcome, Issued), outcome
            serial = outcome.certificate.serial_number
            serials.append(serial)
            if i % 3 == 0:
                reason = RevocationReason.KEY_COMPROMISE
                await components.service.revoke(format(serial, "x"), reason, "bench")
                revoked.append(serial)
    finally:
        await components.close()
    return serials, revoked


async def write_index(cfg: Path, path: Path) -> None:
    """openssl's CA database (``index.txt``, see openssl-ca(1)) from certgate's inventory."""
    from gateway.config import load_config
    from gateway.model import CertificateStatus
    from gateway.server.wiring import build

    reasons = {1: "keyCompromise", 0: "unspecified", 4: "superseded"}
    components = await build(load_config(cfg), start_service=False, startup_warnings=False)
    try:
        lines = []
        for record in await components.store.list_certificates(limit=1_000_000):
            expiry = record.not_after.astimezone(UTC).strftime("%y%m%d%H%M%SZ")
            serial = record.serial.upper()
            serial = serial if len(serial) % 2 == 0 else "0" + serial
            subject = "/" + "/".join(reversed(record.subject.split(",")))
            if record.status is CertificateStatus.REVOKED and record.revoked_at is not None:
                when = record.revoked_at.astimezone(UTC).strftime("%y%m%d%H%M%SZ")
                reason = reasons.get(int(record.revocation_reason or 0), "unspecified")
                lines.append(f"R\t{expiry}\t{when},{reason}\t{serial}\tunknown\t{subject}")
            else:
                lines.append(f"V\t{expiry}\t\t{serial}\tunknown\t{subject}")
        path.write_text("\n".join(lines) + "\n")
    finally:
        await components.close()


def requests_for(issuer_pem: Path, serials: list[int], n: int, seed: int) -> list[bytes]:
    """``n`` DER requests with fresh nonces: issued serials (a third of them revoked) and a
    tenth never issued."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509 import ocsp

    issuer = x509.load_pem_x509_certificate(issuer_pem.read_bytes())
    from gateway.pkix.ocsp import issuer_hashes

    pair = issuer_hashes(issuer.public_bytes(Encoding.DER)).by_algorithm["sha1"]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        serial = rng.getrandbits(64) | 1 if i % 10 == 9 else rng.choice(serials)
        builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            pair[0], pair[1], serial, hashes.SHA1()
        )
        builder = builder.add_extension(x509.OCSPNonce(rng.randbytes(16)), critical=False)
        out.append(builder.build().public_bytes(Encoding.DER))
    return out


@dataclass
class Run:
    target: str
    concurrency: int
    rate: float
    cpu_ms: float


async def drive(url: str, bodies: list[bytes], concurrency: int, keep_alive: bool = False) -> float:
    import aiohttp

    headers = {"Content-Type": "application/ocsp-request"}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=not keep_alive)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(bodies)

        async def worker() -> None:
            for body in queue:
                async with session.post(url, data=body, headers=headers) as response:
                    payload = await response.read()
                    # a successful OCSPResponse starts 30 82 ... 0a 01 00 (responseStatus 0)
                    if response.status != 200 or b"\x0a\x01\x00" not in payload[:8]:
                        raise SystemExit(f"{url}: HTTP {response.status} {payload[:40]!r}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start


def measure(target: str, url: str, pid: int, bodies: list[bytes], concurrency: int) -> Run:
    keep_alive = target.endswith("keep-alive")
    asyncio.run(drive(url, bodies[:50], concurrency, keep_alive))  # warm-up
    cpu_before = cpu_seconds(pid)
    elapsed = asyncio.run(drive(url, bodies, concurrency, keep_alive))
    cpu = cpu_seconds(pid) - cpu_before
    return Run(target, concurrency, len(bodies) / elapsed, cpu * 1000 / len(bodies))


def same_answers(url_a: str, url_b: str, bodies: list[bytes]) -> None:
    """Both responders give the same status for every request of a sample (and verify)."""
    from cryptography.x509 import ocsp

    for body in bodies:
        statuses = []
        for url in (url_a, url_b):
            request = urllib.request.Request(
                url, data=body, headers={"Content-Type": "application/ocsp-request"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    parsed = ocsp.load_der_ocsp_response(response.read())
            except OSError as exc:
                raise SystemExit(f"{url}: {exc}") from None
            statuses.append(parsed.certificate_status)
        if statuses[0] != statuses[1]:
            raise SystemExit(f"certgate and openssl disagree: {statuses}")


def wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0]))):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certs", type=int, default=200, help="certificates in the inventory")
    parser.add_argument("--n", type=int, default=2000, help="measured requests per run")
    parser.add_argument("--rounds", type=int, default=2, help="A,B pairs per concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--keep-alive",
        action="store_true",
        help="also certgate over kept-alive connections (openssl ocsp has none): A,B,C",
    )
    args = parser.parse_args()
    if os.environ.get(_INSIDE) != "1":
        # openssl ocsp -port listens on every interface: run everything in a network
        # namespace of its own whose only interface is loopback.
        os.execvpe(
            "unshare",
            ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
             sys.executable, *sys.argv],
            {**os.environ, _INSIDE: "1"},
        )  # fmt: skip
    from cryptography.hazmat.primitives import serialization

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"load average before: {os.getloadavg()}  cores: {os.cpu_count()}")
    tmp = Path(tempfile.mkdtemp(prefix="ocsp-bench-"))
    certgate_proc = openssl_proc = None
    try:
        port = free_port()
        cfg = write_config(tmp, port)
        subprocess.run(
            [sys.executable, "-m", "gateway.cli", "init", "-c", str(cfg)],
            check=True, cwd=ROOT, capture_output=True,
        )  # fmt: skip
        serials, revoked = asyncio.run(populate(cfg, args.certs))
        certgate_proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "-c", str(cfg)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        certgate_url = f"http://127.0.0.1:{port}/ocsp"
        wait_http(certgate_url, certgate_proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10):
            pass
        ca = tmp / "data" / "ca"
        (tmp / "issuing.pem").write_bytes((ca / "issuing.pem").read_bytes())
        bodies = requests_for(tmp / "issuing.pem", serials, args.n, seed=1)
        same_answers(certgate_url, certgate_url, bodies[:1])  # issues the responder certificate
        # openssl gets certgate's own delegated responder: certificate and (decrypted) key
        passphrase = (ca / "passphrase").read_bytes().strip()
        key = serialization.load_pem_private_key((ca / "ocsp.key.pem").read_bytes(), passphrase)
        (tmp / "ocsp-plain.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        asyncio.run(write_index(cfg, tmp / "index.txt"))
        openssl_port = free_port()
        openssl_proc = subprocess.Popen(
            ["openssl", "ocsp", "-port", str(openssl_port), "-index",
             str(tmp / "index.txt"), "-CA", str(tmp / "issuing.pem"), "-rsigner",
             str(ca / "ocsp.pem"), "-rkey", str(tmp / "ocsp-plain.key"), "-resp_key_id",
             "-nmin", "60", "-ignore_err", "-timeout", "5"],
            stdout=subprocess.DEVNULL, stderr=(tmp / "openssl.log").open("wb"),
        )  # fmt: skip
        openssl_url = f"http://127.0.0.1:{openssl_port}/"
        # Not a probe connection: openssl ocsp's single-threaded responder waits on an idle
        # connection (one that closes without a request wedges it), so read its log.
        deadline = time.monotonic() + 30
        while b"waiting for OCSP client" not in (tmp / "openssl.log").read_bytes():
            if openssl_proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("openssl ocsp did not start")
            time.sleep(0.1)
        same_answers(certgate_url, openssl_url, bodies[:60])
        print(
            f"inventory: {len(serials)} certificates, {len(revoked)} revoked; "
            f"requests: {args.n} per run, fresh nonce each"
        )
        runs: list[Run] = []
        targets = [
            ("certgate", certgate_url, certgate_proc.pid),
            ("openssl", openssl_url, openssl_proc.pid),
        ]
        if args.keep_alive:
            targets.append(("certgate keep-alive", certgate_url, certgate_proc.pid))
        for concurrency in args.concurrency:
            for _ in range(args.rounds):
                for name, url, pid in targets:  # A, B, A, B
                    runs.append(measure(name, url, pid, bodies, concurrency))
                    last = runs[-1]
                    print(
                        f"  {name:19s} c={concurrency:<3d} {last.rate:8.1f} responses/s  "
                        f"{last.cpu_ms:6.3f} CPU ms/response",
                        flush=True,
                    )
        names = [name for name, _, _ in targets]
        print("\nmedian of rounds: responses/s and server CPU ms per response")
        print("| concurrency | " + " | ".join(f"{n} resp/s | {n} CPU ms" for n in names) + " |")
        print("|---" * (1 + 2 * len(names)) + "|")
        for concurrency in args.concurrency:
            row = [str(concurrency)]
            for name in names:
                mine = [r for r in runs if r.concurrency == concurrency and r.target == name]
                rate = statistics.median(r.rate for r in mine)
                cpu = statistics.median(r.cpu_ms for r in mine)
                row += [f"{rate:.0f}", f"{cpu:.3f}"]
            print("| " + " | ".join(row) + " |")
        print(f"load average after: {os.getloadavg()}  at {datetime.now(UTC).isoformat()}")
    except BaseException:
        log = tmp / "openssl.log"
        if log.exists():
            print(log.read_text()[-2000:], file=sys.stderr)
        raise
    finally:
        stop(certgate_proc)
        stop(openssl_proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
