"""TLS on the main listener (issue #15 item 2): ``[server.tls]`` with a certificate issued by
the local CA (re-issued when its names change or a third of its life is left) or from files
(reloaded without a restart: in process, and by SIGHUP to a serving process); ``[server.plain]``
serves device paths only; a switched-off protocol's paths say how to switch it on. Real sockets
on the real app factory, started by the shell's own ``start_listeners``."""

from __future__ import annotations

import asyncio
import signal
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.config import load_config, parse_config
from gateway.errors import ConfigError
from gateway.server.app import MAIN_TLS, create_app
from gateway.server.run import bind_main, start_listeners
from tests.gateway_process import gateway_process
from tests.helpers import free_port, http_ok, write_config


def _tls_config(tmp: Path, tls: str = "", *, plain: int | None = None) -> Path:
    extra = f"[server.tls]\n{tls}\n"
    if plain is not None:
        extra += f"[server.plain]\nport = {plain}\n"
    cfg = write_config(tmp)
    # the [server] table is first in write_config's file: its sub-tables go after [connectors]
    cfg.write_text(cfg.read_text() + extra)
    return cfg


@asynccontextmanager
async def listening(cfg: Path) -> AsyncIterator[tuple[web.Application, int]]:
    config = load_config(cfg)
    sockets = bind_main(config, reuse_port=False)
    app = await create_app(config)
    runner = await start_listeners(app, config, sockets, reuse_port=False)
    try:
        yield app, sockets[0].getsockname()[1]
    finally:
        await runner.cleanup()


async def _peer_certificate(port: int, cafile: Path, name: str = "localhost") -> x509.Certificate:
    ctx = ssl.create_default_context(cafile=str(cafile))
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=name)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 200 ")
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der)


async def _get(port: int, path: str) -> tuple[int, str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    kind = next(
        (h.split(":", 1)[1].strip() for h in lines if h.lower().startswith("content-type")), ""
    )
    return int(lines[0].split()[1]), kind, body.decode(errors="replace")


def _sans(cert: x509.Certificate) -> set[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in ext.get_values_for_type(x509.DNSName)} | {
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    }


def _self_signed(
    directory: Path, cn: str, *, days: float = 30, left: float | None = None
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    start = now - timedelta(days=days - left) if left is not None else now - timedelta(minutes=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tls.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert


async def test_issued_certificate_serves_https_and_the_plain_listener_only_device_paths(
    tmp_path: Path,
) -> None:
    plain = free_port()
    cfg = _tls_config(tmp_path, 'names = ["localhost", "127.0.0.1"]', plain=plain)
    async with listening(cfg) as (app, port):
        root = tmp_path / "data" / "ca" / "root.pem"
        cert = await _peer_certificate(port, root)
        assert _sans(cert) == {"localhost", "127.0.0.1"}
        assert cert.issuer.rfc4514_string() == "CN=certgate Issuing CA"
        key = tmp_path / "data" / "tls" / "server.key"
        assert key.stat().st_mode & 0o077 == 0
        assert (await _get(plain, "/ca/chain.pem"))[0] == 200
        assert (await _get(plain, "/readyz"))[0] == 200
        status, kind, body = await _get(plain, "/acme/directory")
        assert status == 404 and kind.startswith("text/plain")
        assert f"use https://127.0.0.1:{load_config(cfg).server.port}/acme/directory" in body
        assert app[MAIN_TLS].fingerprint == cert.fingerprint(hashes.SHA256()).hex(":").upper()


async def test_issued_certificate_is_reissued_when_names_change(tmp_path: Path) -> None:
    cfg = _tls_config(tmp_path, 'names = ["localhost"]')
    root = tmp_path / "data" / "ca" / "root.pem"
    async with listening(cfg) as (_, port):
        first = await _peer_certificate(port, root)
    cfg.write_text(
        cfg.read_text().replace('names = ["localhost"]', 'names = ["localhost", "gw.example.test"]')
    )
    async with listening(cfg) as (_, port):
        second = await _peer_certificate(port, root)
    assert _sans(first) == {"localhost"} and _sans(second) == {"localhost", "gw.example.test"}


async def test_issued_certificate_with_a_third_of_its_life_left_is_renewed(tmp_path: Path) -> None:
    cfg = _tls_config(tmp_path, 'names = ["localhost"]')
    async with listening(cfg):
        pass
    tls_dir = tmp_path / "data" / "tls"
    # a certificate for the right names with 9 of its 30 days left (less than a third)
    old = _self_signed(tmp_path / "old", "localhost", days=30, left=9)
    (tls_dir / "server.pem").write_bytes((tmp_path / "old" / "tls.pem").read_bytes())
    (tls_dir / "server.key").write_bytes((tmp_path / "old" / "tls.key").read_bytes())
    async with listening(cfg) as (_, port):
        renewed = await _peer_certificate(port, tmp_path / "data" / "ca" / "root.pem")
    assert renewed.serial_number != old.serial_number
    assert renewed.not_valid_after_utc - datetime.now(UTC) > timedelta(days=60)


async def test_certificate_from_files_is_reloaded_without_a_restart(tmp_path: Path) -> None:
    files = tmp_path / "files"
    first = _self_signed(files, "first")
    cfg = _tls_config(tmp_path, 'certificate = "files/tls.pem"\nkey = "files/tls.key"')
    async with listening(cfg) as (app, port):
        assert await _peer_certificate(port, files / "tls.pem") == first
        time.sleep(0.01)  # a new mtime
        second = _self_signed(files, "second")
        await app[MAIN_TLS].reload("test")
        assert await _peer_certificate(port, files / "tls.pem") == second
        # unusable files are refused and the loaded certificate keeps serving
        (files / "tls.key").write_text("not a key\n")
        await app[MAIN_TLS].reload("test")
        assert await _peer_certificate(port, files / "tls.pem") == second
    assert not (tmp_path / "data" / "tls").exists()  # nothing issued


def test_sighup_reloads_the_certificate_of_a_serving_process(tmp_path: Path) -> None:
    """SIGHUP reloads the main listener's certificate and those of the front-ends' listeners
    (EST's mutual-TLS port here)."""
    files, est_files = tmp_path / "files", tmp_path / "files" / "est"
    _self_signed(files, "first")
    _self_signed(est_files, "est-first")
    est_port = free_port()
    cfg = _tls_config(tmp_path, 'certificate = "files/tls.pem"\nkey = "files/tls.key"')
    cfg.write_text(
        cfg.read_text()
        + f'[est]\nenabled = true\nhost = "127.0.0.1"\nport = {est_port}\n'
        + 'server_names = ["localhost"]\n'
        + 'tls_certificate = "files/est/tls.pem"\ntls_key = "files/est/tls.key"\n'
    )

    def served(port: int, directory: Path = files) -> x509.Certificate | None:
        ctx = ssl.create_default_context(cafile=str(directory / "tls.pem"))
        try:
            with ssl_socket(port, ctx) as s:
                return x509.load_der_x509_certificate(s.getpeercert(binary_form=True))
        except (OSError, ssl.SSLError):
            return None

    def ready(port: int) -> bool:
        return served(port) is not None and served(est_port, est_files) is not None

    with gateway_process(cfg, ready=ready) as gateway:
        proc = gateway.proc
        second = _self_signed(files, "second")
        est_second = _self_signed(est_files, "est-second")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while served(gateway.port) != second or served(est_port, est_files) != est_second:
            assert proc.poll() is None and time.monotonic() < deadline, "not reloaded"
            time.sleep(0.2)


def ssl_socket(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    import socket

    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost")


@pytest.mark.parametrize(
    ("server", "key", "reason"),
    [
        ({"plain": {"port": 8080}}, "server.plain", "needs [server.tls]"),
        ({"tls": {"certificate": "a.pem"}}, "server.tls.key", "go together"),
        ({"tls": {}, "plain": {}}, "server.plain.port", "required"),
        (
            {"tls": {}, "plain": {"port": 1, "external_url": "https://x"}},
            "server.plain.external_url",
            "plain HTTP",
        ),
        ({"tls": {"names": []}}, "server.tls.names", "needed"),
    ],
)
def test_listener_configuration_errors_name_the_key(
    tmp_path: Path, server: dict[str, object], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"server": server}, "site.toml", tmp_path)
    assert f"site.toml: {key}:" in str(err.value) and reason in str(err.value)


def test_without_server_tls_the_main_listener_stays_plain(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    assert config.server.tls is None and config.server.plain is None
    assert config.server.external_url.startswith("http://")
    tls = parse_config({"server": {"port": 8443, "tls": {}}}, "x.toml", tmp_path).server
    assert tls.external_url == "https://127.0.0.1:8443" and tls.device_url == tls.external_url


@pytest.mark.parametrize(
    ("path", "table"),
    [
        ("/acme/directory", "acme"),
        ("/acme/new-order", "acme"),
        ("/.well-known/est/cacerts", "est"),
        ("/scep/devices?operation=GetCACaps", "scep"),
        ("/certsrv/mscep/mscep.dll", "scep"),
        ("/wstep/CEP", "wstep"),
    ],
)
async def test_switched_off_protocol_paths_say_how_to_switch_them_on(
    tmp_path: Path, path: str, table: str
) -> None:
    cfg = write_config(tmp_path)
    app = await create_app(load_config(cfg))
    async with TestClient(TestServer(app)) as client:
        response = await client.post(path) if "new-order" in path else await client.get(path)
        assert response.status == 404
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert f"set enabled = true in the [{table}] table of {cfg}" in text
    assert len(text.splitlines()) == 1


def test_missing_certificate_files_stop_serve_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    cfg = _tls_config(tmp_path, 'certificate = "nope.pem"\nkey = "nope.key"')
    assert main(["serve", "-c", str(cfg), "--port", "0"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("certgate:")]
    assert len(lines) == 1 and "server.tls" in lines[0] and "nope.pem" in lines[0], err
    assert "Traceback" not in err


def test_sighup_without_tls_keeps_a_plain_gateway_serving(tmp_path: Path) -> None:
    with gateway_process(write_config(tmp_path)) as gateway:
        gateway.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert gateway.proc.poll() is None and http_ok(f"{gateway.url}/healthz")
