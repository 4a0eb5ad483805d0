"""ACME in bench/peers.py: certgate (``serve --workers 2``, HTTPS as Pebble, SQLite or
PostgreSQL), Pebble (Debian) and acme2certifier (PyPI, under uWSGI, 5 processes, SQLite, its
openssl CA handler with an EC P-256 CA), all with challenge validation off, driven by
bench/acme_flow.py (one flow = newOrder .. certificate download)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from acme_flow import drive, run_loop
from acme_servers import start_certgate, start_pebble
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from peers_common import PgDatabase, Server, sqlite_serials, tree
from procs import free_port, stop, wait_port

A2C_VERSION = "0.46.3"
UWSGI_VERSION = "2.0.31"


def no_verify() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def acme_driver(
    url: str, n: int, concurrency: int, tag: str, clock_started: Any = None, keys: Any = None
) -> dict[str, Any]:
    """bench/acme_flow.py's flows; certificate keys from ``keys`` (a bench/keypool.py pool)."""
    ctx = no_verify() if url.startswith("https") else None
    csr_key = keys.key if keys is not None else None
    try:
        return run_loop(
            drive(url, n, concurrency, ctx, tag, clock_started=clock_started, csr_key=csr_key)
        )
    except TimeoutError:
        # registration or warm-up hung (Debian's Pebble 2.4 can deadlock at concurrency >= 4):
        # the cell is all errors, and the run goes on
        if clock_started:
            clock_started()
        why = "TimeoutError: the server hung in registration or warm-up"
        return {"ok": 0, "errors": n, "elapsed": 1.0, "latencies_ms": [], "error_samples": [why]}


def a2c_venv(cache: Path) -> Path:
    """The venv with acme2certifier and uWSGI (made on first use, pinned versions)."""
    venv = cache / f"a2c-{A2C_VERSION}"
    if not (venv / "bin" / "uwsgi").exists():
        print(f"peers: installing acme2certifier {A2C_VERSION} + uWSGI into {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q",
             f"acme2certifier=={A2C_VERSION}", f"uwsgi=={UWSGI_VERSION}"],
            check=True,
        )  # fmt: skip
    return venv


def _ec_ca(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "a2c bench CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "ca-cert.pem", tmp / "ca-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"bench-ca-pass"),
        )
    )
    return cert_path, key_path


@contextlib.contextmanager
def acme2certifier(tmp: Path, cache: Path) -> Iterator[tuple[Server, str]]:
    venv = a2c_venv(cache)
    tmp.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _ec_ca(tmp)
    (tmp / "certs").mkdir()
    port = free_port()
    cfg = tmp / "acme_srv.cfg"
    cfg.write_text(
        textwrap.dedent(f"""
        [DEFAULT]
        debug: False

        [Nonce]
        nonce_check_disable: False

        [CAhandler]
        handler_module: acme2certifier.cahandlers.openssl_ca_handler
        issuing_ca_key: {ca_key}
        issuing_ca_key_passphrase: bench-ca-pass
        issuing_ca_cert: {ca_cert}
        issuing_ca_crl: {tmp / "crl.pem"}
        cert_validity_days: 30
        cert_save_path: {tmp / "certs"}
        ca_cert_chain_list: []

        [DBhandler]
        handler_module: acme2certifier.dbhandlers.wsgi_handler
        dbfile: {tmp / "acme_srv.db"}

        [Certificate]
        revocation_reason_check_disable: False

        [Challenge]
        challenge_validation_disable: True

        [Order]
        tnauthlist_support: False
        """)
    )
    env = {
        **os.environ,
        "ACME_SRV_CONFIGFILE": str(cfg),
        # challenge_validation_disable alone is ignored without it (acme_srv.cfg's comment)
        "ACME2CERTIFIER_I_KNOW_THE_RISK": "1",
    }
    with (tmp / "uwsgi.log").open("w+b") as log:
        proc = subprocess.Popen(
            [str(venv / "bin" / "uwsgi"), "--http-socket", f"127.0.0.1:{port}",
             "--module", "acme2certifier.share.acme2certifier_wsgi:application",
             "--master", "--processes", "5", "--enable-threads", "--die-on-term",
             "--disable-logging", "--need-app", "--chdir", str(tmp)],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
        )  # fmt: skip
        try:
            wait_port(port, proc, 60)
            time.sleep(1.0)  # uWSGI forks its workers after binding
            server = Server(
                name="acme2certifier",
                kind="peer",
                store="sqlite",
                pids=tree(proc.pid),
                issued=lambda: [p.stem for p in (tmp / "certs").glob("*.pem")],
                info={"version": A2C_VERSION, "uwsgi": UWSGI_VERSION, "processes": 5},
            )
            yield server, f"http://127.0.0.1:{port}/directory"
        except RuntimeError as exc:
            log.seek(0)
            raise RuntimeError(f"acme2certifier: {exc}: {log.read()[-1500:]!r}") from None
        finally:
            stop(proc)


@contextlib.contextmanager
def pebble(tmp: Path) -> Iterator[tuple[Server, str]]:
    tmp.mkdir(parents=True, exist_ok=True)
    proc, url = start_pebble(tmp)
    try:
        # Pebble keeps its certificates in memory only: the count is the driver's
        yield Server("pebble", "peer", "memory", tree(proc.pid), issued=lambda: []), url
    finally:
        stop(proc)


@contextlib.contextmanager
def certgate(tmp: Path, store: str, workers: int = 2) -> Iterator[tuple[Server, str]]:
    tmp.mkdir(parents=True, exist_ok=True)
    db = PgDatabase("peers_acme") if store == "postgres" else None
    try:
        proc, url = start_certgate(tmp, workers, tls=True, store_url=db.url if db else "")
        try:
            yield (
                Server(
                    name=f"certgate w{workers}",
                    kind="certgate",
                    store=store,
                    pids=tree(proc.pid),
                    issued=db.serials if db else sqlite_serials(tmp / "data" / "certgate.db"),
                    db_pids=db.backends if db else lambda: (),
                ),
                url,
            )
        finally:
            stop(proc)
    finally:
        if db:
            db.drop()
