"""Issuances per second through the EnrollmentService with the local CA on SQLite, against the
crypto-only rate (CSR signature verify + certificate sign) measured in the same run.

    .venv/bin/python bench/issue_local.py [--n 3000] [--concurrency 16] [--cores 1] [--rounds 6]
        [--key ec-p256|rsa-2048] [--weak-key-checks on|off]

The process is pinned to ``--cores`` CPUs (default one) *before* any thread starts, so every
thread of the store shares the core with the event loop: the ratio is for one core.
Target (issue #2): service rate >= 0.5 x crypto-only rate, judged at concurrency 16 -- a
gateway serves many clients at once, and its SQLite group commit makes one durable commit
for the requests that arrived together. ``--concurrency 1`` gives the sequential figure
(one commit per issuance), which is lower.

Policy rule key-weak (gateway.policy.weak_keys) costs nothing for EC keys and runs badkeys'
factoring checks on every RSA key: ``--key rsa-2048`` measures with RSA CSRs (keys drawn from a
pool of 64, since generating thousands of RSA keys takes minutes; no check remembers a key), and
``--weak-key-checks off`` builds the service on ``PolicyEngine(weak_key_checks=False)``, the one
seam that leaves the rule out, to compare. The rule's own cost per CSR is printed as well.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pin(cores: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        available = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(available[:cores]))


def make_csrs(n: int, key_kind: str = "ec-p256") -> list:
    from cryptography.hazmat.primitives.asymmetric import ec
    from keypool import host_csr  # bench/keypool.py, beside this script

    csrs = []
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1()) if key_kind == "ec-p256" else rsa_key(i)
        csrs.append(host_csr(f"host{i}.bench.example.test", key))
    return csrs


_RSA_POOL: list = []


def rsa_key(i: int):
    """The ``i % 64``-th of a pool of RSA-2048 keys (made on first use)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    while len(_RSA_POOL) < 64:
        _RSA_POOL.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _RSA_POOL[i % 64]


def weak_key_rule_cost(csrs: list) -> float:
    """Microseconds per CSR that rule key-weak's checks take on these CSRs' keys."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from gateway.policy.weak_keys import warm_up, weak_key_problems

    warm_up()
    # fresh key objects, as each request decodes its own CSR
    keys = [
        x509.load_der_x509_csr(c.public_bytes(serialization.Encoding.DER)).public_key()
        for c in csrs
    ]
    start = time.process_time()
    for key in keys:
        assert weak_key_problems(key) == ()
    return (time.process_time() - start) / len(keys) * 1e6


class Rate:
    """Operations per wall-clock second and per CPU second of this process (user + system).
    On a shared machine the wall-clock rate also counts time other processes held the core;
    the CPU rate does not, so it is the steadier figure for "on one core"."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def done(self, ops: int) -> tuple[float, float]:
        return (
            ops / (time.perf_counter() - self.wall),
            ops / (time.process_time() - self.cpu),
        )


def crypto_only(
    csrs: list, issuing_cert, issuing_key, collect: bool = False
) -> tuple[float, float]:
    """CSR verify + sign a comparable end-entity certificate; returns (wall, cpu) ops/s.
    ``collect``: collect the garbage it left inside the timing (see :func:`measure`)."""
    import secrets

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuing_key.public_key())
    now = datetime.now(UTC)
    clock = Rate()
    for csr in csrs:
        assert csr.is_signature_valid
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(issuing_cert.subject)
            .public_key(csr.public_key())
            .serial_number(secrets.randbits(127) | 1)
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(san, critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False
            )
            .add_extension(aki, critical=False)
            .sign(issuing_key, hashes.SHA256())
        )
    if collect:
        gc.collect()
    return clock.done(len(csrs))


class Tally:
    """Operations and the wall-clock and CPU seconds they took, summed over rounds."""

    def __init__(self) -> None:
        self.ops = 0
        self.wall = 0.0
        self.cpu = 0.0

    def add(self, ops: int, rates: tuple[float, float]) -> None:
        self.ops += ops
        self.wall += ops / rates[0]
        self.cpu += ops / rates[1]

    def rates(self) -> tuple[float, float]:
        return self.ops / self.wall, self.ops / self.cpu


async def measure(
    crypto_csrs: list,
    service_csrs: list,
    data: Path,
    concurrency: int,
    rounds: int,
    key_kind: str = "ec-p256",
    weak_key_checks: bool = True,
) -> tuple[Tally, Tally, list[float]]:
    """Crypto-only and the service in ``rounds`` alternating slices, so both see the same
    machine: this VM's speed drifts by 10-30 % within seconds, which skewed a ratio taken from
    one long crypto-only run and one long service run. Returns both tallies and the ratio
    (CPU time) of each round."""
    from gateway.config import load_config
    from gateway.model import EnrollmentRequest, Issued
    from gateway.policy import PolicyEngine
    from gateway.server.wiring import build
    from gateway.service import EnrollmentService, local_requester
    from gateway.store import DEFAULT_DB_NAME

    cfg = data / "certgate.toml"
    templates = Path(__file__).resolve().parent.parent / "conf" / "templates"
    cfg.write_text(
        f'[data]\ndir = "{data / "d"}"\n[policy]\ntemplates_dir = "{templates}"\n'
        "[poller]\nenabled = false\n"
    )
    components = await build(load_config(cfg))
    enroller = components.service
    if not weak_key_checks:
        # the production wiring except for the one seam that leaves rule key-weak out
        policy = PolicyEngine(components.policy.templates, weak_key_checks=False)
        enroller = EnrollmentService(components.store, policy, components.connectors)
        await enroller.start()
    cert, key = issuing_material()
    requester = local_requester("bench")
    requests = [
        EnrollmentRequest(
            csr=c, template="tls-server", requester=requester, transaction_id=f"bench-{i}"
        )
        for i, c in enumerate(service_csrs)
    ]
    # warm up (first-use costs: prepared statements, imports)
    warm = make_csrs(20, key_kind)
    for i, c in enumerate(warm):
        await enroller.enroll(
            EnrollmentRequest(
                csr=c, template="tls-server", requester=requester, transaction_id=f"warm-{i}"
            )
        )
    crypto_only(warm, cert, key)
    # The thousands of prepared CSRs and requests are the driver's, not the service's: keep
    # the collector from scanning them (a server holds no such heap). Each phase then pays for
    # collecting its own garbage at its end, inside its timing, so neither pays for the other.
    gc.collect()
    gc.freeze()
    checkpoint = sqlite3.connect(data / "d" / DEFAULT_DB_NAME, isolation_level=None)
    crypto, service, per_round = Tally(), Tally(), []
    for r in range(rounds):
        slice_crypto = crypto_csrs[r::rounds]
        c_rates = crypto_only(slice_crypto, cert, key, collect=True)
        crypto.add(len(slice_crypto), c_rates)
        queue = iter(requests[r::rounds])
        issued: list[Issued] = []

        async def worker(queue: Iterator[EnrollmentRequest], issued: list[Issued]) -> None:
            for req in queue:
                outcome = await enroller.enroll(req)
                assert isinstance(outcome, Issued), outcome
                issued.append(outcome)

        clock = Rate()
        await asyncio.gather(*(worker(queue, issued) for _ in range(concurrency)))
        # The WAL checkpoint that moves this round's writes into the database file belongs
        # to the service: run it inside the round, or the store's background checkpointer
        # (same process, same CPU clock) would do it during the next crypto-only round.
        checkpoint.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        gc.collect()  # likewise the garbage it left
        s_rates = clock.done(len(issued))
        service.add(len(issued), s_rates)
        per_round.append(s_rates[1] / c_rates[1])
    checkpoint.close()
    await components.close()
    return crypto, service, per_round


def issuing_material():
    """An issuing CA of the same kind the local CA creates by default (EC P-256, SHA-256)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench Issuing CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6, help="alternating measurement slices")
    parser.add_argument("--key", choices=("ec-p256", "rsa-2048"), default="ec-p256")
    parser.add_argument(
        "--weak-key-checks",
        choices=("on", "off"),
        default="on",
        help="off: the service without rule key-weak (PolicyEngine(weak_key_checks=False))",
    )
    parser.add_argument("--json", type=Path, help="also write the results here (bench/charts.py)")
    args = parser.parse_args()
    pin(args.cores)
    # separate CSR objects: cryptography caches what it parsed, so the service must not
    # inherit the crypto-only run's parsing
    crypto_csrs, service_csrs = make_csrs(args.n, args.key), make_csrs(args.n, args.key)
    with tempfile.TemporaryDirectory() as tmp:
        # on the event loop `certgate serve` runs on (uvloop unless CERTGATE_EVENT_LOOP=asyncio)
        from gateway.server.run import run_loop

        crypto, service, per_round = run_loop(
            measure(
                crypto_csrs,
                service_csrs,
                Path(tmp),
                args.concurrency,
                args.rounds,
                args.key,
                args.weak_key_checks == "on",
            )
        )
    setup = f"cores={args.cores} n={args.n} concurrency={args.concurrency} rounds={args.rounds}"
    print(
        f"{setup} store=sqlite ca=local(ec-p256) csr-keys={args.key} "
        f"weak-key-checks={args.weak_key_checks}"
    )
    c_rates, s_rates = crypto.rates(), service.rates()
    for i, label in enumerate(("wall-clock", "CPU time")):
        print(f"-- per {label} second")
        print(f"crypto-only (CSR verify + sign):   {c_rates[i]:8.1f} ops/s")
        print(f"service issuance (end to end):     {s_rates[i]:8.1f} issuances/s")
        print(f"ratio service/crypto:            {s_rates[i] / c_rates[i]:8.3f}  (target >= 0.50)")
    print(f"per-round ratios (CPU time): {' '.join(f'{r:.3f}' for r in per_round)}")
    rule_us = weak_key_rule_cost(service_csrs[:500])
    per_issuance_us = 1e6 / s_rates[1]
    print(
        f"rule key-weak alone: {rule_us:8.1f} us CPU per CSR "
        f"({rule_us / per_issuance_us:.1%} of one issuance's CPU here)"
    )
    if args.json:
        from charts import write_result  # bench/charts.py, beside this script

        label = f"service, c={args.concurrency}, {args.key}"
        rows = [{"label": label, "rate": s_rates[1]}]
        ref = [{"label": "crypto-only (verify + sign)", "rate": c_rates[1]}]
        write_result(args.json, "issue_local", "per CPU second, one core", rows, ref)


if __name__ == "__main__":
    main()
