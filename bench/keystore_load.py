"""Issuances per second with the CA key in a SoftHSM2 token (``key_store = "pkcs11"``) against
the file key store, in the same run: two gateways built in this process (SQLite store, local CA
with the same key algorithm), measured in alternating slices so both see the same machine.

    .venv/bin/python bench/keystore_load.py [--n 2000] [--concurrency 16] [--rounds 6]
        [--cores 1] [--key-algorithm ec-p256|ec-p384|rsa-3072]

Needs softhsm2 (Debian package; ../shared/peers/install.sh) and python-pkcs11 (test extra).
The process is pinned to ``--cores`` CPUs; SoftHSM2 is a library in this process, so its
signing CPU is counted as the server's (with a hardware HSM it would be the HSM's). Reported:
issuances per wall-clock second, per CPU second, and CPU microseconds per issuance, plus the
bare signature rate of each signer (``sign_tbs`` on a 600-byte TBS).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from issue_local import Rate, Tally, make_csrs, pin  # bench/issue_local.py, beside this

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "bench-pin"


def soft_token(base: Path) -> None:
    """A SoftHSM2 token labelled ``bench`` in ``base``; SOFTHSM2_CONF set for this process."""
    tokens = base / "tokens"
    tokens.mkdir(parents=True)
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench",
         "--pin", PIN, "--so-pin", "bench-so"],
        check=True, capture_output=True,
    )  # fmt: skip


def write_config(base: Path, algorithm: str, pkcs11: bool) -> Path:
    templates = Path(__file__).resolve().parent.parent / "conf" / "templates"
    store = (
        'key_store = "pkcs11"\n'
        f'pkcs11_module = "{MODULE}"\npkcs11_token_label = "bench"\n'
        'pkcs11_pin = "env:BENCH_PKCS11_PIN"\n'
        if pkcs11
        else 'passphrase = "env:BENCH_CA_PASSPHRASE"\n'
    )
    cfg = base / "certgate.toml"
    cfg.write_text(
        f'[data]\ndir = "{base / "d"}"\n[policy]\ntemplates_dir = "{templates}"\n'
        "[poller]\nenabled = false\n"
        f'[connectors.local]\ntype = "local"\nkey_algorithm = "{algorithm}"\n{store}'
    )
    return cfg


def sign_rate(signer, n: int = 500) -> float:
    tbs = os.urandom(600)
    start = time.perf_counter()
    for _ in range(n):
        signer.sign_tbs(tbs)
    return n / (time.perf_counter() - start)


async def measure(args: argparse.Namespace, base: Path) -> dict[str, Tally]:
    from gateway.config import load_config
    from gateway.model import EnrollmentRequest, Issued
    from gateway.server.wiring import build
    from gateway.service import local_requester

    os.environ["BENCH_PKCS11_PIN"] = PIN
    os.environ["BENCH_CA_PASSPHRASE"] = "bench passphrase"
    soft_token(base / "softhsm")
    services = {}
    closers = []
    for name in ("file", "pkcs11"):
        directory = base / name
        directory.mkdir()
        components = await build(
            load_config(write_config(directory, args.key_algorithm, name == "pkcs11"))
        )
        closers.append(components.close)
        services[name] = components
    requester = local_requester("bench")
    csrs = {name: make_csrs(args.n) for name in services}
    for name, components in services.items():  # warm up
        for i, c in enumerate(make_csrs(20)):
            await components.service.enroll(
                EnrollmentRequest(
                    csr=c, template="tls-server", requester=requester, transaction_id=f"w{i}"
                )
            )
        signer = components.connectors["local"]._material.signer
        print(f"bare signature rate, {name:6}: {sign_rate(signer):8.1f} sign_tbs/s (wall)")
    gc.collect()
    gc.freeze()
    tallies = {name: Tally() for name in services}
    for r in range(args.rounds):
        order = list(services) if r % 2 == 0 else list(reversed(services))
        for name in order:
            enroll = services[name].service.enroll
            queue = iter(
                EnrollmentRequest(
                    csr=c, template="tls-server", requester=requester,
                    transaction_id=f"{name}-{r}-{i}",
                )
                for i, c in enumerate(csrs[name][r :: args.rounds])
            )  # fmt: skip
            issued: list[object] = []

            async def worker(queue=queue, issued=issued, enroll=enroll) -> None:
                for req in queue:
                    outcome = await enroll(req)
                    assert isinstance(outcome, Issued), outcome
                    issued.append(outcome)

            clock = Rate()
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            gc.collect()
            tallies[name].add(len(issued), clock.done(len(issued)))
    for close in closers:
        await close()
    return tallies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="issuances per key store")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument(
        "--key-algorithm", choices=("ec-p256", "ec-p384", "rsa-3072"), default="ec-p256"
    )
    args = parser.parse_args()
    pin(args.cores)
    from gateway.server.run import run_loop

    with tempfile.TemporaryDirectory() as tmp:
        tallies = run_loop(measure(args, Path(tmp)))
    print(
        f"cores={args.cores} n={args.n} per store, concurrency={args.concurrency} "
        f"rounds={args.rounds} store=sqlite ca key={args.key_algorithm}"
    )
    for name, tally in tallies.items():
        wall, cpu = tally.rates()
        print(
            f"{name:6} key store: {wall:8.1f} issuances/s wall-clock, {cpu:8.1f} per CPU second, "
            f"{1e6 / cpu:7.0f} us CPU per issuance"
        )
    file_wall, pkcs_wall = tallies["file"].rates()[0], tallies["pkcs11"].rates()[0]
    print(f"pkcs11/file (wall-clock): {pkcs_wall / file_wall:.3f}")


if __name__ == "__main__":
    main()
