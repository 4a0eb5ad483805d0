"""One ACME account driving complete issuance flows, and the timed run of many of them
(see bench/acme_load.py for what a flow is and how the figures are read)."""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from acme_http import Connection  # bench/acme_http.py, beside this script
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

T = TypeVar("T")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Worker:
    """One ACME account driving flows sequentially."""

    def __init__(
        self,
        http: Connection,
        directory: dict[str, str],
        csr_key: Callable[[], ec.EllipticCurvePrivateKey] | None = None,
    ) -> None:
        self.http = http
        self.d = directory
        # the certificates' keys: from a pool (bench/keypool.py), or a fresh one each flow
        self.csr_key = csr_key or (lambda: ec.generate_private_key(ec.SECP256R1()))
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
            self.d["newAccount"],
            # a contact: acme2certifier refuses an account without one
            {"termsOfServiceAgreed": True, "contact": ["mailto:bench@bench.example.org"]},
        )
        assert status in (200, 201), body
        self.kid = headers["location"]

    async def flow(self, name: str) -> bytes:
        """One complete issuance for ``name``; the certificate chain (PEM) downloaded."""
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
        key = self.csr_key()
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
        return body


async def drive(
    directory_url: str,
    flows: int,
    concurrency: int,
    ssl_ctx: Any,
    tag: str,
    flow_timeout: float = 60,
    clock_started: Callable[[], None] | None = None,
    csr_key: Callable[[], ec.EllipticCurvePrivateKey] | None = None,
) -> dict[str, Any]:
    """Time ``flows`` flows on ``concurrency`` accounts: rate, p50, p99 (ms), plus "ok",
    "errors" (a failed flow is counted, and its worker goes on) and "serials" (of the
    certificates downloaded, read after the clock stops). ``csr_key`` gives each flow's
    certificate key (default: a fresh P-256 key)."""
    connections = [Connection(directory_url, ssl_ctx) for _ in range(concurrency)]
    try:
        status, _, body = await connections[0].request("GET", directory_url)
        assert status == 200, body
        directory = json.loads(body)
        workers = [Worker(c, directory, csr_key) for c in connections]
        # bounded like the flows (a hung server raises TimeoutError here)
        await asyncio.wait_for(asyncio.gather(*(w.register() for w in workers)), flow_timeout)
        # One untimed flow per worker, concurrently: every account's key and connection is
        # warm before the clock starts.
        warm = (w.flow(f"warmup{n}-{tag}.bench.example.test") for n, w in enumerate(workers))
        await asyncio.wait_for(asyncio.gather(*warm), flow_timeout)
        latencies: list[float] = []
        chains: list[bytes] = []
        errors: list[str] = []
        counter = iter(range(flows))

        async def run(w: Worker) -> None:
            for i in counter:
                t = time.perf_counter()
                try:
                    name = f"f{i}-{tag}.bench.example.test"
                    chains.append(await asyncio.wait_for(w.flow(name), flow_timeout))
                except (AssertionError, RuntimeError, OSError, ValueError, KeyError) as exc:
                    # TimeoutError is an OSError: a hung flow (Debian's Pebble 2.4 can
                    # deadlock at concurrency >= 4) is counted, on a fresh connection
                    errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    w.nonce = None
                    await w.http.close()
                    if isinstance(exc, TimeoutError):
                        break  # a hung server: this worker stops (the rest are counted)
                    continue
                latencies.append(time.perf_counter() - t)

        if clock_started:
            clock_started()
        start = time.perf_counter()
        await asyncio.gather(*(run(w) for w in workers))
        elapsed = time.perf_counter() - start
    finally:
        for c in connections:
            await c.close()
    # flows no worker got to (every worker stopped on a timeout) are failures too
    errors += ["not attempted"] * (flows - len(chains) - len(errors))
    latencies.sort()
    if not latencies:  # every flow failed: the figures say 0, "errors" says why
        latencies.append(0.0)
    return {
        "rate": len(chains) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "ok": len(chains),
        "warmup": concurrency,
        "errors": len(errors),
        "error_samples": errors[:5],
        "elapsed": elapsed,
        "latencies_ms": [x * 1000 for x in latencies],
        "serials": [x509.load_pem_x509_certificate(c).serial_number for c in chains],
    }


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run the driver on uvloop when installed (the server uses it too): the driver shares
    the machine's cores with the server, so its own event-loop overhead lowers the rate."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of the gateway
        return asyncio.run(coro)
    return uvloop.run(coro)
