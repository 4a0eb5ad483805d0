"""Submit latency through the MS-WSTEP connector (gateway A -> gateway B's CES) against a
direct local-CA issuance on A, and against the raw HTTPS round-trip to B, in the same run.

    .venv/bin/python bench/ces_latency.py [--n 300] [--warmup 20]

Gateway B is a real ``certgate serve`` subprocess (wstep front-end on a TLS listener, local
CA, SQLite). Gateway A is built in this process from its configuration (wiring.build) with two
templates: ``tls-server`` on A's local CA and ``ces-tls`` routed to the ``ms_ces`` connector.
Requests are sequential (latency, not throughput). Printed: p50/p90/p99 per path, the ratio of
the CES path to the local path, and the connector's own cost = CES path - (raw HTTPS
RequestSecurityToken round-trip to B + A's local path minus A's signing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.helpers import TEMPLATES, certgate, free_port, write_config
from tests.wstep_helpers import PASSWORD, add_user, gateway_b_config, rst, serving


def csr(i: int) -> x509.CertificateSigningRequest:
    name = f"host{i}.bench.example"
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def line(label: str, values: list[float]) -> str:
    return (
        f"{label:34} p50 {pct(values, 0.5):7.2f} ms  p90 {pct(values, 0.9):7.2f} ms  "
        f"p99 {pct(values, 0.99):7.2f} ms  ({len(values) / sum(values):7.1f}/s sequential)"
    )


async def run(n: int, warmup: int, tmp: Path) -> None:
    import aiohttp

    from gateway.config import load_config
    from gateway.model import EnrollmentRequest, Issued, Requester
    from gateway.server.wiring import build

    b_port, b_tls = free_port(), free_port()
    b_cfg = gateway_b_config(tmp / "b", port=b_port, tls_port=b_tls)
    add_user(b_cfg, "alice")
    chain = tmp / "b-chain.pem"
    certgate("ca", "export", "-c", str(b_cfg), "-o", str(chain), check=True)
    templates = tmp / "a-templates"
    templates.mkdir()
    text = (TEMPLATES / "tls-server.toml").read_text()
    (templates / "tls-server.toml").write_text(text)
    ces_text = re.sub(r'(?m)^name = ".*"$', 'name = "ces-tls"', text)
    ces_text = re.sub(r'(?m)^oid = ".*"$', 'oid = "2.25.4242"', ces_text)
    ces_text = re.sub(r'(?m)^connector = ".*"$', 'connector = "ces"', ces_text)
    ces_text = ces_text.replace(
        "[connector_params]\n", '[connector_params]\nadcs_template = "tls-server"\n'
    )
    (templates / "ces-tls.toml").write_text(ces_text)
    (tmp / "a").mkdir()
    trust = tmp / "b" / "tls" / "tls.crt"
    a_cfg = write_config(
        tmp / "a",
        f"""
        [connectors.ces]
        type = "ms_ces"
        url = "https://127.0.0.1:{b_tls}/wstep/CES"
        username = "alice"
        password = "env:CES_PASSWORD"
        ca_bundle = "{trust}"
        issuer_chain = "{chain}"
        """,
    )
    a_cfg.write_text(a_cfg.read_text().replace(str(TEMPLATES), str(templates)))
    os.environ["CES_PASSWORD"] = PASSWORD
    requester = Requester("bench", "bench", "local")
    with serving(b_cfg, b_port):
        components = await build(load_config(a_cfg))
        try:
            service = components.service
            csrs = [csr(i) for i in range(3 * (n + warmup))]
            local: list[float] = []
            remote: list[float] = []
            raw: list[float] = []
            context = ssl.create_default_context(cafile=str(trust))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
                url = f"https://127.0.0.1:{b_tls}/wstep/CES"
                headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
                for i in range(n + warmup):
                    # Interleave the three paths so machine noise hits them alike.
                    for kind, bucket in (("local", local), ("ces", remote), ("raw", raw)):
                        c = csrs[3 * i + ("local", "ces", "raw").index(kind)]
                        started = time.perf_counter()
                        if kind == "raw":
                            body = rst(c.public_bytes(Encoding.DER), template="tls-server")
                            async with http.post(url, data=body, headers=headers) as r:
                                await r.read()
                                assert r.status == 200, r.status
                        else:
                            template = "tls-server" if kind == "local" else "ces-tls"
                            outcome = await service.enroll(
                                EnrollmentRequest(c, template, requester, str(uuid.uuid4()))
                            )
                            assert isinstance(outcome, Issued), outcome
                        if i >= warmup:
                            bucket.append(time.perf_counter() - started)
        finally:
            await components.close()
    print(f"bench/ces_latency.py --n {n} --warmup {warmup}  (sequential, loopback, TLS 1.3)")
    print(line("A local CA issuance (service.enroll)", local))
    print(line("A -> B through ms_ces (service.enroll)", remote))
    print(line("raw HTTPS RST round-trip to B", raw))
    ratio = statistics.median(remote) / statistics.median(local)
    overhead = statistics.median(remote) - statistics.median(raw) - statistics.median(local)
    print(f"ratio CES path / local path (p50):  {ratio:6.2f}")
    print(
        "CES path - raw round-trip - A's local path (p50): "
        f"{overhead * 1000:6.2f} ms  (A's connector + its extra store work, minus A's signing)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.n, args.warmup, Path(tmp)))


if __name__ == "__main__":
    main()
