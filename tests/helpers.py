"""Shared test helpers: CSRs built with cryptography, configs written to tmp dirs, peers.
Certificates and keys come from :mod:`tests.pki_helpers`."""

from __future__ import annotations

import asyncio
import importlib
import io
import ipaddress
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from tests.pki_helpers import ec_key

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "conf" / "templates"


def make_csr(
    key: object | None = None,
    *,
    cn: str | None = None,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    subject: x509.Name | None = None,
    hash_alg: hashes.HashAlgorithm | None = None,
) -> x509.CertificateSigningRequest:
    key = key or ec_key()
    name = subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hash_alg or hashes.SHA256())  # type: ignore[arg-type]


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def write_config(tmp: Path, extra: str = "", *, port: int = 0) -> Path:
    """A configuration using the shipped templates and a data dir inside ``tmp``."""
    cfg = tmp / "certgate.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            [server]
            host = "127.0.0.1"
            port = {port}
            access_log = false
            [data]
            dir = "{tmp / "data"}"
            [policy]
            templates_dir = "{TEMPLATES}"
            [poller]
            interval = "1s"
            lease = "2s"
            [connectors.local]
            type = "local"
            crl_urls = ["http://127.0.0.1:{port or 8080}/ca/crl"]
            """
        )
        + textwrap.dedent(extra)
    )
    return cfg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def certgate(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    check: bool = False,
    input: str | None = None,
    process: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as an operator would and return what a process would have: exit code,
    standard output and standard error (text).

    In-process through ``gateway.cli.main(argv)`` by default (a CLI process costs a second of
    interpreter start and imports; the suite runs hundreds): the call gets the environment
    ``env`` adds (its ``PYTHONPATH`` first on the import path), the checkout as working
    directory, ``input`` as standard input, a logging set-up of its own, and a ``SystemExit``
    or an uncaught exception becomes the exit code a process would have had.
    ``process=True`` (and always ``serve``, which only returns when stopped) runs the real
    console command in a subprocess instead, for what is about the process itself;
    ``timeout`` applies to that only."""
    if process or "serve" in args:
        proc = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args],
            capture_output=True,
            text=True,
            input=input,
            env={**os.environ, **(env or {})},
            timeout=timeout,
            cwd=REPO,
        )
    else:
        proc = run_cli(list(args), env=env, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"certgate {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def run_cli(
    argv: list[str], *, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``gateway.cli.main(argv)`` in this interpreter with the process-wide state it touches
    (environment, working directory, standard streams, logging) set up as for a fresh process
    and put back afterwards. From inside a running event loop (an async test) it runs on a
    thread of its own: ``main`` runs its own loop, and the caller waits for it as it would
    for a subprocess."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_cli(argv, env, input)
    result: list[subprocess.CompletedProcess[str]] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(_run_cli(argv, env, input))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="certgate-cli")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _run_cli(
    argv: list[str], env: dict[str, str] | None, input: str | None
) -> subprocess.CompletedProcess[str]:
    from gateway.cli import main

    out, err = _binary_text_stream(), _binary_text_stream()
    saved_env, saved_cwd, saved_path = os.environ.copy(), os.getcwd(), sys.path[:]
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    # PYTHONPATH as a process would see it: first on the import path (entry points included).
    extra_path = [p for p in (env or {}).get("PYTHONPATH", "").split(os.pathsep) if p]
    code: int
    with logging_state_restored():
        # A fresh process has no logging handler: main()'s basicConfig must install its own,
        # writing to this call's standard error, and not find pytest's capture handlers.
        logging.getLogger().handlers[:] = []
        os.environ.update(env or {})
        os.chdir(REPO)
        if extra_path:
            sys.path[:0] = extra_path
            importlib.invalidate_caches()
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(input or ""), out, err
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse errors and --help, as the interpreter maps them
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=err)
                code = 1
        except KeyboardInterrupt:
            code = 130
        except Exception:  # an uncaught exception: the interpreter's traceback and exit 1
            traceback.print_exc(file=err)
            code = 1
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved_streams
            sys.path[:] = saved_path
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)
    return subprocess.CompletedProcess(["certgate", *argv], code, _text(out), _text(err))


def _binary_text_stream() -> io.TextIOWrapper:
    """A text stream with a ``.buffer`` (``certgate ca crl`` writes bytes to stdout)."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)


def _text(stream: io.TextIOWrapper) -> str:
    """What ``subprocess.run(..., text=True)`` would have read: UTF-8, universal newlines."""
    stream.flush()
    raw = stream.buffer.getvalue()  # type: ignore[attr-defined]
    return str(raw.decode("utf-8")).replace("\r\n", "\n").replace("\r", "\n")


@contextmanager
def logging_state_restored() -> Iterator[None]:
    """Put the logging configuration back as it was on exit: root and named loggers'
    handlers, levels, propagation and disabled flags, ``logging.disable`` and
    ``captureWarnings`` (the CLI's ``main`` and ``serve``'s set-up configure them for the
    whole interpreter)."""
    manager = logging.Logger.manager
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level, root.disabled)
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
        for name, lg in manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    saved_disable = manager.disable
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers[:], root.level, root.disabled = saved_root
        for name, lg in list(manager.loggerDict.items()):
            if not isinstance(lg, logging.Logger):
                continue
            if name in saved:
                lg.handlers[:], lg.level, lg.propagate, lg.disabled = saved[name]
            else:
                lg.handlers[:] = []
                lg.setLevel(logging.NOTSET)
                lg.propagate, lg.disabled = True, False
        logging.disable(saved_disable)


def init_gateway(cfg: Path, env: dict[str, str] | None = None) -> None:
    """``certgate init``: create the data directory, database and CA that operator commands
    act on (they never create one themselves)."""
    certgate("init", "-c", str(cfg), env=env, check=True)


def require_tool(name: str) -> str:
    """Path of a real peer program; skip if missing, fail when CERTGATE_REQUIRE_PEERS=1."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (../shared/peers/install.sh installs it)"
        if os.environ.get("CERTGATE_REQUIRE_PEERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    exe = require_tool("openssl")
    return subprocess.run([exe, *args], capture_output=True, input=input, timeout=30)


def http_ok(url: str) -> bool:
    """True when ``url`` answers 2xx within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def wait_until_up(
    proc: subprocess.Popen[Any],
    ready: Callable[[], bool],
    output: Callable[[], str],
    *,
    timeout: float = 30,
    message: str = "gateway did not become healthy",
) -> None:
    """Poll ``ready`` until it holds; fail at once with the process output if it exited."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {output()}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM (the gateway's graceful shutdown), SIGKILL if it is still there after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def count_ca_signatures(monkeypatch: Any) -> list[str]:
    """From now on, one entry per certificate the embedded CA signs (``LocalCA.sign``
    wrapped for the test): how many times a request was judged and signed."""
    from backends.local_ca.connector import LocalCA

    signed: list[str] = []
    real = LocalCA.sign

    def counting(self: LocalCA, *args: Any, **kwargs: Any) -> Any:
        signed.append("sign")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LocalCA, "sign", counting)
    return signed
