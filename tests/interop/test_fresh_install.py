"""certgate as a user installs it: a wheel of this checkout in a fresh virtual environment
outside the checkout, ``certgate init`` + ``certgate serve`` run from a directory with no
source tree, and a real client of each protocol enrolls with the command the start banner
prints: certbot over HTTPS (ACME), micromdm's scepclient (SCEP), curl + openssl (EST).

The wheel is built from a copy of the package sources (the checkout gets no build/ or
egg-info), by a cached build environment (setuptools, wheel); the new environment installs
it with its dependencies from a wheelhouse cached under ``$CERTGATE_CI_CACHE`` (default
/var/tmp/certgate-ci), keyed by the dependency list, so only the first run downloads.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from tests.helpers import REPO, free_port, require_tool, stop_process
from tests.interop.site_clients import Site, banner_command, chains_to_site_root

pytestmark = pytest.mark.interop

CACHE = Path(os.environ.get("CERTGATE_CI_CACHE", "/var/tmp/certgate-ci"))
PACKAGES = ("gateway", "protocols", "backends")
#: What a user's shell would not have: nothing of the checkout or the test run leaks in.
SCRUBBED = ("PYTHONPATH", "VIRTUAL_ENV", "CERTGATE_CONFIG", "CERTGATE_DATA", "CERTGATE_TESTING")


def _run(*cmd: str, timeout: float = 600, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _cached_dir(name: str, recipe: object, make: Callable[[Path], None]) -> Path:
    """``CACHE/name-<hash of recipe>``, made by ``make(dir)`` once (in place: a virtual
    environment cannot move; a marker file says it is complete)."""
    key = hashlib.sha256(json.dumps([recipe, sys.version_info[:2]]).encode()).hexdigest()[:16]
    target = CACHE / f"{name}-{key}"
    done = CACHE / f"{name}-{key}.done"
    with _locked(name):
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)
            make(target)
            done.touch()
    return target


def _pyproject() -> dict:
    with (REPO / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


def build_venv() -> Path:
    """A virtual environment with the build backend (``[build-system] requires``)."""
    requires = _pyproject()["build-system"]["requires"]

    def make(path: Path) -> None:
        _run(sys.executable, "-m", "venv", str(path))
        _run(str(path / "bin" / "pip"), "install", "-q", *requires)

    return _cached_dir("wheel-build-venv", requires, make)


def wheelhouse() -> Path:
    """Wheels of every runtime dependency (``[project] dependencies``)."""
    deps = _pyproject()["project"]["dependencies"]

    def make(path: Path) -> None:
        pip = str(build_venv() / "bin" / "pip")
        _run(pip, "wheel", "-q", "-w", str(path), *deps, timeout=1200)

    return _cached_dir("wheelhouse", deps, make)


def build_wheel(out: Path) -> Path:
    """A wheel of the checkout's package sources as they are now."""
    src = out / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(REPO / package, src / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    pip = str(build_venv() / "bin" / "pip")
    proc = _run(pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(src))
    # our own metadata gives setuptools nothing to warn about (issue #15 item 3)
    assert "deprecat" not in (proc.stdout + proc.stderr).lower(), proc.stderr
    (wheel,) = out.glob("certgate-*.whl")
    return wheel


@dataclass
class Installed:
    venv: Path
    home: Path  # the working directory: no checkout anywhere above it
    env: dict[str, str]

    def certgate(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return _run(
            str(self.venv / "bin" / "certgate"), *args, cwd=self.home, env=self.env, timeout=timeout
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("fresh-install")
    assert REPO not in tmp.parents
    started = time.monotonic()
    wheel = build_wheel(tmp / "dist")
    built = time.monotonic()
    house = wheelhouse()
    venv = tmp / "venv"
    # a new environment; the build environment's pip installs into it (ensurepip would cost
    # seconds) and nothing is byte-compiled ahead (Python does it on import)
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    pip = [str(build_venv() / "bin" / "pip"), "--python", str(venv / "bin" / "python")]
    _run(*pip, "install", "-q", "--no-compile", "--no-index", "--find-links", str(house),
         str(wheel), timeout=900)  # fmt: skip
    print(f"wheel built in {built - started:.1f} s, installed in {time.monotonic() - built:.1f} s")
    home = tmp / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["HOME"] = str(home)
    return Installed(venv, home, env)


def test_the_installed_package_runs_not_the_checkout(installed: Installed) -> None:
    where = _run(
        str(installed.venv / "bin" / "python"), "-c", "import gateway; print(gateway.__file__)",
        cwd=installed.home, env=installed.env,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(installed.venv), where
    assert not Path(where).is_relative_to(REPO)


@dataclass
class Serving:
    site: Site
    banner: str


@pytest.fixture(scope="module")
def serving(installed: Installed) -> Iterator[Serving]:
    site = Site(installed.home / "site")
    ports = ["--port", str(free_port()), "--plain-port", str(free_port())]
    installed.certgate("init", str(site.dir), *ports, "--est-port", str(free_port()))
    # the ACME challenge port init writes (5002) may be taken by another test: a free one
    text = site.config.read_text()
    assert "http01_port = 5002" in text
    site.config.write_text(text.replace("http01_port = 5002", f"http01_port = {free_port()}"))
    log = installed.home / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(installed.venv / "bin" / "certgate"), "serve", "-c", str(site.config)],
            stdout=out, stderr=subprocess.STDOUT, cwd=installed.home, env=installed.env,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not (_healthy(site) and "data directory" in log.read_text()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not come up:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield Serving(site, log.read_text())
    finally:
        stop_process(proc)


def _healthy(site: Site) -> bool:
    root = site.data / "root-ca.pem"
    if not root.exists():
        return False
    context = ssl.create_default_context(cafile=str(root))
    try:
        with urllib.request.urlopen(
            f"https://localhost:{site.port}/healthz", timeout=1, context=context
        ) as reply:
            return reply.status == 200
    except OSError:
        return False


def _client(serving: Serving, installed: Installed, label: str, work: Path) -> None:
    """Run the banner's command for ``label`` verbatim in bash, in an empty directory. PATH:
    the installed certgate, then a directory holding only certbot (a Python package of the
    test environment), then the system's."""
    clients = work / "clients"
    clients.mkdir()
    (clients / "certbot").symlink_to(Path(sys.executable).parent / "certbot")
    path = os.pathsep.join(
        [str(installed.venv / "bin"), str(clients)]
        + [p for p in installed.env["PATH"].split(os.pathsep) if not Path(p).is_relative_to(REPO)]
    )
    proc = subprocess.run(
        ["bash", "-c", banner_command(serving.banner, label)],
        cwd=work, env={**installed.env, "PATH": path}, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def _leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def _published_chain(site: Site, work: Path) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{site.plain_port}/ca/chain.pem") as reply:
        (work / "ca-chain.pem").write_bytes(reply.read())


def test_certbot_gets_a_certificate_over_https(
    installed: Installed, serving: Serving, tmp_path: Path
) -> None:
    _client(serving, installed, "certbot", tmp_path)
    (cert_path,) = (tmp_path / "certbot" / "live").glob("*/cert.pem")
    _published_chain(serving.site, tmp_path)
    assert chains_to_site_root(_leaf(cert_path), serving.site, tmp_path)


def test_micromdm_scepclient_enrolls(
    installed: Installed, serving: Serving, tmp_path: Path
) -> None:
    require_tool("scepclient")
    _client(serving, installed, "scepclient", tmp_path)
    cert = _leaf(tmp_path / "scep-device.pem")
    assert cert.subject.rfc4514_string().startswith("CN=scep-device")
    _published_chain(serving.site, tmp_path)
    assert chains_to_site_root(cert, serving.site, tmp_path)


def test_curl_openssl_enrolls_over_est(
    installed: Installed, serving: Serving, tmp_path: Path
) -> None:
    require_tool("curl")
    require_tool("openssl")
    _client(serving, installed, "curl+openssl", tmp_path)
    cert = _leaf(tmp_path / "device.pem")
    assert cert.subject.rfc4514_string() == "CN=est-device"
    _published_chain(serving.site, tmp_path)
    assert chains_to_site_root(cert, serving.site, tmp_path)


def _est_enrollments(site: Site) -> float:
    """certgate_enrollments_total for EST, summed over templates and outcomes, from /metrics."""
    context = ssl.create_default_context(cafile=str(site.data / "root-ca.pem"))
    url = f"https://localhost:{site.port}/metrics"
    with urllib.request.urlopen(url, timeout=5, context=context) as reply:
        text = reply.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("certgate_enrollments_total{") and 'protocol="est"' in line
    )


def test_metrics_and_the_installed_cli_see_an_enrollment(
    installed: Installed, serving: Serving, tmp_path: Path
) -> None:
    before = _est_enrollments(serving.site)
    _client(serving, installed, "curl+openssl", tmp_path)
    assert _est_enrollments(serving.site) == before + 1
    serial = format(_leaf(tmp_path / "device.pem").serial_number, "x").lstrip("0")
    config = str(serving.site.config)
    listed = json.loads(installed.certgate("certs", "list", "--json", "-c", config).stdout)
    rows = listed if isinstance(listed, list) else listed.get("certificates", [])
    assert serial in [str(row.get("serial", "")).lower().lstrip("0") for row in rows]
    events = json.loads(
        installed.certgate("audit", "list", "--serial", serial, "--json", "-c", config).stdout
    )
    events = events if isinstance(events, list) else events.get("events", [])
    assert "certificate.issued" in [e.get("type") or e.get("event") for e in events], events
