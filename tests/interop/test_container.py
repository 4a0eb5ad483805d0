"""The container image, built from the Dockerfile and run without a Docker daemon.

As the project machines build it: a Debian bookworm tree made by debootstrap and imported with
``podman import`` is the base image (no registry needed; the Dockerfile's default base stays
python:3.11-slim), ``buildah bud --isolation chroot --network host`` builds the image with the
host's CA bundle mounted for pip, and ``buildah from`` + ``buildah run`` runs it on the host's
network. On its first start the image writes a site into its empty volume (``certgate init``)
with the external URL and CA passphrase from the environment; the test checks /healthz, a
curl+openssl EST enrollment, who owns the volume, and that a second start serves the same CA.

Warm re-runs are fast: the debootstrap tree and the base image are cached under
``$CERTGATE_CI_CACHE`` (default /var/tmp/certgate-ci), keyed by a hash of the command that made
them, and buildah re-uses the dependency layer while pyproject.toml is unchanged. Missing
tools are installed from Debian when running as root (debootstrap, podman, buildah, runc).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, require_tool
from tests.interop.site_clients import Site, chains_to_site_root, est_enroll, free_port_options
from tests.interop.site_clients import sudo_tools as install_packages

pytestmark = pytest.mark.interop

CACHE = Path(os.environ.get("CERTGATE_CI_CACHE", "/var/tmp/certgate-ci"))
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
DEBOOTSTRAP = [
    "debootstrap", "--variant=minbase",
    "--include=python3,python3-venv,ca-certificates", SUITE,
]  # fmt: skip
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGE = "localhost/certgate-ci:test"
BUILD_STAGE = "localhost/certgate-ci:build-stage"
UID = 10001  # the image's user (Dockerfile)


def _run(*cmd: str, timeout: float = 900, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One build at a time on this machine (the cache and podman's storage are shared)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _tools() -> None:
    if any(shutil.which(t) is None for t in ("debootstrap", "podman", "buildah")):
        install_packages("debootstrap", "podman", "buildah", "runc")
    for tool in ("debootstrap", "podman", "buildah"):
        require_tool(tool)
    if os.geteuid() != 0:
        message = "building and running the image this way needs root (chroot isolation)"
        if os.environ.get("CERTGATE_REQUIRE_PEERS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def base_image() -> str:
    """The debootstrap base image, made once per recipe: tree and image are cached."""
    key = hashlib.sha256(json.dumps([DEBOOTSTRAP, MIRROR, 1]).encode()).hexdigest()[:16]
    tag = f"localhost/certgate-ci-base:{key}"
    if subprocess.run(["podman", "image", "exists", tag], timeout=60).returncode == 0:
        return tag
    rootfs = CACHE / f"rootfs-{key}"
    if not (CACHE / f"rootfs-{key}.done").exists():
        partial = CACHE / f"rootfs-{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(rootfs, ignore_errors=True)
        _run(*DEBOOTSTRAP, str(partial), MIRROR, timeout=1200)
        partial.rename(rootfs)
        (CACHE / f"rootfs-{key}.done").touch()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        _run("podman", "import", "--change", 'CMD ["/bin/bash"]', "-", tag, stdin=tar.stdout)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait(timeout=60)
    return tag


def build_image(base: str) -> str:
    """``buildah bud`` of the checkout's Dockerfile on ``base`` (layers cached by buildah).

    The build stage is tagged too, so that pruning dangling images afterwards keeps both
    stages' cached layers and drops only what earlier builds left (each code change leaves a
    ~120 MB final layer behind otherwise)."""
    common = [
        "buildah", "bud", "--format", "docker", "--layers",
        "--isolation", "chroot", "--network", "host",
        "--build-arg", f"BASE={base}", "-f", str(REPO / "Dockerfile"),
    ]  # fmt: skip
    if HOST_CA.exists():  # a TLS-inspecting proxy's CA reaches pip this way
        common += [
            "-v", f"{HOST_CA}:/etc/ssl/certs/host-ca.crt:ro",
            "--build-arg", "PIP_CERT=/etc/ssl/certs/host-ca.crt",
        ]  # fmt: skip
    _run(*common, "--target", "build", "-t", BUILD_STAGE, str(REPO), timeout=1800)
    _run(*common, "-t", IMAGE, str(REPO), timeout=1800)
    subprocess.run(["podman", "image", "prune", "-f"], capture_output=True, timeout=300)
    return IMAGE


@pytest.fixture(scope="module")
def image() -> str:
    _tools()
    with _locked():
        started = time.monotonic()
        tag = build_image(base_image())
        print(f"image {tag} ready in {time.monotonic() - started:.1f} s")
    return tag


class Container:
    """One ``buildah from`` working container; ``start`` runs the image's entrypoint in it."""

    def __init__(
        self, image: str, volume: Path, env: dict[str, str], mounts: dict[Path, str] | None = None
    ) -> None:
        self.name = f"certgate-ci-{os.getpid()}-{secrets.token_hex(3)}"
        self.volume, self.env, self.mounts = volume, env, mounts or {}
        _run("buildah", "from", "--name", self.name, image, timeout=120)
        # buildah run mounts an image VOLUME over a -v bind to the same path (buildah 1.28):
        # drop the declaration from this working container so /data is the test's directory
        _run("buildah", "config", "--volume", "/data-", self.name, timeout=60)
        self.proc: subprocess.Popen[str] | None = None
        self.log = volume.parent / f"{self.name}.log"

    def command(self, *args: str) -> list[str]:
        cmd = ["buildah", "run", "--isolation", "chroot", "--network", "host"]
        cmd += ["-v", f"{self.volume}:/data"]
        for source, target in self.mounts.items():
            cmd += ["-v", f"{source}:{target}:ro"]
        for key, value in self.env.items():
            cmd += ["-e", f"{key}={value}"]
        return [*cmd, self.name, "--", *args]

    def start(self) -> None:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                self.command("certgate-entrypoint", "serve"),
                stdout=out, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM to buildah run, which ends the container's processes."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def remove(self) -> None:
        self.stop()
        subprocess.run(["buildah", "rm", self.name], capture_output=True, timeout=120)


def _healthz(port: int, context: ssl.SSLContext) -> bytes | None:
    try:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/healthz", timeout=2, context=context
        ) as reply:
            return reply.read() if reply.status == 200 else None
    except OSError:
        return None


def _wait_healthy(c: Container, site: Site, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    unverified = ssl._create_unverified_context()
    while time.monotonic() < deadline:
        assert c.proc is not None
        if c.proc.poll() is not None:
            raise AssertionError(f"container exited {c.proc.returncode}:\n{c.output()[-4000:]}")
        if site.config.exists() and _healthz(site.port, unverified) is not None:
            return
        time.sleep(0.3)
    raise AssertionError(f"no /healthz within {timeout} s:\n{c.output()[-4000:]}")


def _volume(tmp: Path) -> Path:
    volume = tmp / "volume"
    volume.mkdir()
    os.chown(volume, UID, UID)
    os.chmod(volume, 0o700)
    return volume


@pytest.fixture(scope="module")
def running(
    image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Container, Site]]:
    volume = _volume(tmp_path_factory.mktemp("container"))
    options = free_port_options()
    port = options[options.index("--port") + 1]
    env = {
        "CERTGATE_EXTERNAL_URL": f"https://gateway.example.test:{port}",
        "CERTGATE_CA_PASSPHRASE": secrets.token_urlsafe(24),
        "CERTGATE_INIT_OPTIONS": " ".join(options),
    }
    container = Container(image, volume, env)
    site = Site(volume / "site")
    try:
        container.start()
        _wait_healthy(container, site)
        yield container, site
    finally:
        container.remove()


def test_first_start_writes_a_site_with_the_environment_and_serves_https(
    running: tuple[Container, Site],
) -> None:
    container, site = running
    toml = site.toml()
    assert toml["server"]["external_url"] == container.env["CERTGATE_EXTERNAL_URL"]
    assert toml["server"]["host"] == "0.0.0.0"
    assert "gateway.example.test" in toml["server"]["tls"]["names"]
    assert "first start" in container.output()
    # /healthz over TLS, verified against the root CA the gateway wrote into the volume
    trust = ssl.create_default_context(cafile=str(site.data / "root-ca.pem"))
    assert _healthz(site.port, trust) is not None


def test_volume_belongs_to_the_unprivileged_user_and_the_ca_uses_the_given_passphrase(
    running: tuple[Container, Site],
) -> None:
    _, site = running
    for path in (site.dir, site.config, site.data, site.dir / "secrets"):
        assert path.stat().st_uid == UID, path
    assert (site.dir / "secrets").stat().st_mode & 0o077 == 0
    # CERTGATE_CA_PASSPHRASE was set: no generated passphrase file beside the keys
    assert not (site.data / "ca" / "passphrase").exists()


def test_a_client_enrolls_over_est(running: tuple[Container, Site], tmp_path: Path) -> None:
    _, site = running
    cert = est_enroll(site, tmp_path, "container-device")
    assert chains_to_site_root(cert, site, tmp_path)


def test_healthcheck_command_answers(running: tuple[Container, Site]) -> None:
    container, _ = running
    proc = subprocess.run(
        container.command("certgate-entrypoint", "healthcheck"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_second_start_serves_the_same_site(running: tuple[Container, Site], tmp_path: Path) -> None:
    container, site = running
    root = (site.data / "root-ca.pem").read_bytes()
    before = container.output().count("first start")
    container.stop()
    container.start()
    _wait_healthy(container, site)
    assert container.output().count("first start") == before  # no second init
    assert (site.data / "root-ca.pem").read_bytes() == root
    cert = est_enroll(site, tmp_path, "after-restart")
    assert chains_to_site_root(cert, site, tmp_path)


PG_ADMIN_DSN = os.environ.get(
    "CERTGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _pg(sql: str, database: str | None = None) -> list[Any]:
    import asyncio

    import asyncpg

    async def run() -> list[Any]:
        dsn = PG_ADMIN_DSN if database is None else PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + database
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            reason = f"PostgreSQL at {PG_ADMIN_DSN} unreachable ({type(exc).__name__})"
            if os.environ.get("CERTGATE_REQUIRE_PEERS") == "1":
                pytest.fail(reason)
            pytest.skip(reason)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.mark.postgres
def test_first_start_on_postgresql_from_a_database_url_file(image: str, tmp_path: Path) -> None:
    """As docs/compose.yml runs it: the database URL reaches the image as a mounted secret file
    (CERTGATE_DATABASE_URL_FILE), the site names that file, and the tables, the CA's issuance
    records and the issued certificates are in PostgreSQL from the first start."""
    database = f"certgate_container_{secrets.token_hex(5)}"
    _pg(f'CREATE DATABASE "{database}"')
    try:
        run_secrets = tmp_path / "secrets"
        run_secrets.mkdir()
        server = PG_ADMIN_DSN.removeprefix("postgresql://").rsplit("/", 1)[0]
        url_file = run_secrets / "database_url"
        url_file.write_text(f"postgresql+asyncpg://{server}/{database}\n")
        for path in (run_secrets, url_file):
            os.chown(path, UID, UID)
        url_file.chmod(0o600)
        env = {
            "CERTGATE_EXTERNAL_URL": "https://localhost",
            "CERTGATE_CA_PASSPHRASE": secrets.token_urlsafe(24),
            "CERTGATE_DATABASE_URL_FILE": "/run/secrets/database_url",
            "CERTGATE_INIT_OPTIONS": " ".join(free_port_options()),
        }
        container = Container(image, _volume(tmp_path), env, {run_secrets: "/run/secrets"})
        site = Site(container.volume / "site")
        try:
            container.start()
            _wait_healthy(container, site)
            assert site.toml()["store"] == {"url": "file:/run/secrets/database_url"}
            assert not (site.data / "certgate.db").exists()
            cert = est_enroll(site, tmp_path / "est", "pg-device")
            serial = format(cert.serial_number, "x")
        finally:
            container.remove()
        rows = _pg("SELECT serial, subject FROM certificates", database)
        assert any(r["serial"].lstrip("0") == serial.lstrip("0") for r in rows), rows
    finally:
        _pg(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_a_first_start_whose_init_failed_is_refused_later(image: str, tmp_path: Path) -> None:
    """init stops half-way (here: its database does not exist); the next start says so and
    exits instead of serving a site without its database, CA or bootstrap accounts."""
    missing = f"certgate_missing_{secrets.token_hex(5)}"
    server = PG_ADMIN_DSN.removeprefix("postgresql://").rsplit("/", 1)[0]
    env = {
        "CERTGATE_CA_PASSPHRASE": secrets.token_urlsafe(24),
        "CERTGATE_DATABASE_URL": f"postgresql+asyncpg://{server}/{missing}",
        "CERTGATE_INIT_OPTIONS": " ".join(free_port_options()),
    }
    container = Container(image, _volume(tmp_path), env)
    try:
        for _ in range(2):
            container.start()
            assert container.proc is not None
            assert container.proc.wait(timeout=120) != 0
        log = container.output()
        assert log.count("first start: certgate init") == 1
        assert "certgate init did not finish" in log and "remove /data/site" in log
    finally:
        container.remove()
