"""EST in bench/peers.py: certgate (``serve --workers 2``, SQLite or PostgreSQL, and two
instances on one PostgreSQL) and libest's example ``estserver`` (cisco/libest, built from
source into the cache directory), driven by one /simpleenroll driver (bench/est_load.py's,
HTTPS keep-alive, HTTP Basic, P-256 CSRs prepared before the clock starts, their keys from
bench/peers.py's key pool).

libest: the source is a git clone of https://github.com/cisco/libest (``--libest-src`` takes a
checkout or a bare repository, e.g. the one the project's fetch tool leaves under
/work/.mirror/cisco+libest/repo). It is built with the machine's gcc and OpenSSL 3, which no
longer has FIPS_mode()/FIPS_mode_set(): a two-line header, forced into every compilation unit
with ``-include``, makes them constant 0 (FIPS off, as libest's own default). Nothing of libest
is kept in this repository."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from est_load import certgate as certgate_cli
from est_load import wait_ready, write_config
from peers_common import PgDatabase, Server, sqlite_serials, tree
from procs import free_port, stop, wait_port

LIBEST_URL = "https://github.com/cisco/libest"
FIPS_SHIM = "#define FIPS_mode() 0\n#define FIPS_mode_set(x) 0\n"
USER, PASSWORD = "estuser", "estpwd"  # the example server's built-in account
REPO = Path(__file__).resolve().parent.parent


def build_libest(cache: Path, src: Path | None) -> Path:
    """The estserver binary, built on first use into ``cache``/libest."""
    prefix = cache / "libest" / "install"
    exe = prefix / "bin" / "estserver"
    if exe.exists():
        return exe
    work = cache / "libest" / "src"
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    origin = str(src) if src else LIBEST_URL
    done = subprocess.run(["git", "clone", "-q", origin, str(work)], capture_output=True)
    if done.returncode != 0:
        raise SystemExit(
            f"peers: cannot get libest from {origin}: pass --libest-src with a clone of "
            f"{LIBEST_URL} (a bare repository will do)"
        )
    shim = cache / "libest" / "fips_shim.h"
    shim.write_text(FIPS_SHIM)
    log = cache / "libest" / "build.log"
    print(f"peers: building libest into {prefix} (log: {log})", flush=True)
    with log.open("wb") as out:
        for cmd in (
            ["./configure", f"--prefix={prefix}", "--disable-safec",
             f"CFLAGS=-O2 -w -include {shim}"],
            ["make", "-j2"],
            ["make", "install"],
        ):  # fmt: skip
            if subprocess.run(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT).returncode:
                raise SystemExit(f"peers: libest build failed at {' '.join(cmd)}; see {log}")
    return exe


def _index_serials(index: Path) -> list[str]:
    """Serials in an OpenSSL CA index.txt (one issued certificate a line)."""
    if not index.exists():
        return []
    return [line.split("\t")[3] for line in index.read_text().splitlines() if line.strip()]


@contextlib.contextmanager
def libest(tmp: Path, exe: Path, src_example: Path, idle_window: float) -> Iterator[Server]:
    """estserver with the example CA of libest's createCA.sh (P-256), Basic auth."""
    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("createCA.sh", "ESTcommon.sh", "estExampleCA.cnf", "ext.cnf"):
        shutil.copy(src_example / name, tmp / name)
    subprocess.run(["bash", "./createCA.sh"], cwd=tmp, check=True, capture_output=True)
    shutil.copy(tmp / "estCA" / "cacert.crt", tmp / "trustedcerts.crt")
    port = free_port()
    env = {
        **os.environ,
        "EST_TRUSTED_CERTS": "./trustedcerts.crt",
        "EST_CACERTS_RESP": "./estCA/cacert.crt",
        "EST_OPENSSL_CACONFIG": "./estExampleCA.cnf",
    }
    key = "estCA/private/estservercertandkey.pem"
    with (tmp / "estserver.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(exe), "-c", key, "-k", key, "-r", "estrealm", "-p", str(port)],
            cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_port(port, proc)
            yield Server(
                name="libest estserver",
                kind="peer",
                store="index.txt",
                pids=tree(proc.pid),
                issued=lambda: _index_serials(tmp / "estCA" / "index.txt"),
                idle_window=idle_window,
                info={
                    "urls": [f"https://127.0.0.1:{port}/.well-known/est/simpleenroll"],
                    "cafile": str(tmp / "estCA" / "cacert.crt"),
                    "auth": (USER, PASSWORD),
                },
            )
        finally:
            stop(proc)


def _start_serve(cfg: Path, workers: int, http_port: int, est_port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "-c", str(cfg), "--workers", str(workers)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(http_port, est_port, proc)
    except BaseException:
        stop(proc)
        raise
    return proc


@contextlib.contextmanager
def certgate(tmp: Path, store: str, workers: int = 2, instances: int = 1) -> Iterator[Server]:
    """``certgate serve`` with EST; ``instances`` > 1: that many gateways on one PostgreSQL
    database and one CA (the first one's data directory), the driver's connections spread
    over them."""
    tmp.mkdir(parents=True, exist_ok=True)
    db = PgDatabase("peers_est") if store.startswith("postgres") else None
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = [(free_port(), free_port()) for _ in range(instances)]
        cfgs = []
        for i, (http_port, est_port) in enumerate(ports):
            d = tmp / f"i{i}"
            d.mkdir()
            cfg = write_config(d, http_port, est_port)
            text = cfg.read_text().replace(str(d / "data"), str(tmp / "i0" / "data"))
            if db:
                text += f'\n[store]\nurl = "{db.url}"\n'
            cfg.write_text(text)
            cfgs.append(cfg)
        certgate_cli("init", "-c", str(cfgs[0]))
        certgate_cli("est", "user", "add", USER, "--password-env", "PW", "-c", str(cfgs[0]),
                     env={"PW": PASSWORD})  # fmt: skip
        for cfg, (http_port, est_port) in zip(cfgs, ports, strict=True):
            procs.append(_start_serve(cfg, workers, http_port, est_port))
        cafile = tmp / "ca.pem"
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[0][0]}/ca/chain.pem") as r:
            cafile.write_bytes(r.read())
        roots = [p.pid for p in procs]
        yield Server(
            name=f"certgate w{workers}" + (f" x{instances}" if instances > 1 else ""),
            kind="certgate",
            store=store,
            pids=lambda: [pid for root in roots for pid in tree(root)()],
            issued=db.serials if db else sqlite_serials(tmp / "i0" / "data" / "certgate.db"),
            db_pids=db.backends if db else lambda: (),
            info={
                "urls": [f"https://127.0.0.1:{e}/.well-known/est/simpleenroll" for _, e in ports],
                "cafile": str(cafile),
                "auth": (USER, PASSWORD),
            },
        )
    finally:
        for p in procs:
            stop(p)
        if db:
            db.drop()


def example_dir(cache: Path) -> Path:
    return cache / "libest" / "src" / "example" / "server"


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="peers-est-"))
