"""The EST listener's server certificate: issued once by the local CA and kept (key 0600),
shared by ``--workers 2``, or taken from ``[est] tls_certificate``/``tls_key`` and reloaded by
the server shell (SIGHUP)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import stat
import time
from pathlib import Path

from cryptography import x509

from gateway.config import load_config
from gateway.server.app import LISTENERS, create_app, listener_certificates
from gateway.server.run import bind_main, start_listeners
from tests.est_helpers import serving, write_est_config
from tests.helpers import certgate, free_port
from tests.pki_helpers import self_signed, write_cert, write_key


def _server_cert(port: int, cafile: Path) -> x509.Certificate:
    ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _listener_certs(cfg: Path) -> list[dict[str, object]]:
    records = json.loads(certgate("certs", "list", "-c", str(cfg), "--json", check=True).stdout)
    return [r for r in records if r["requester"] == "certgate-est-listener"]


def test_server_certificate_is_issued_once_and_kept(tmp_path: Path) -> None:
    port = free_port()
    cfg = write_est_config(tmp_path, est_port=port)
    with serving(cfg, port) as gw:
        first = _server_cert(port, gw.ca_file)
    key_file = tmp_path / "data" / "est" / "server.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with serving(cfg, port) as gw:
        second = _server_cert(port, gw.ca_file)
    assert first == second
    sans = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost"}
    assert len(_listener_certs(cfg)) == 1


def test_two_workers_share_one_issued_server_certificate(tmp_path: Path) -> None:
    port = free_port()
    cfg = write_est_config(tmp_path, est_port=port)
    with serving(cfg, port, "--workers", "2") as gw:
        seen = {_server_cert(port, gw.ca_file).serial_number for _ in range(6)}
    assert len(seen) == 1 and len(_listener_certs(cfg)) == 1


def test_configured_server_certificate_is_used(tmp_path: Path) -> None:
    key, cert = self_signed("est.example", sans=("127.0.0.1",))
    write_cert(tmp_path / "est.pem", cert)
    write_key(tmp_path / "est.key", key)
    port = free_port()
    cfg = write_est_config(
        tmp_path, est_port=port, est='tls_certificate = "est.pem"\ntls_key = "est.key"\n'
    )
    with serving(cfg, port):
        assert _server_cert(port, tmp_path / "est.pem") == cert
    assert _listener_certs(cfg) == []


async def test_configured_server_certificate_is_reloaded_by_the_shell(tmp_path: Path) -> None:
    """The EST listener hands its certificate to the shell (``Listener.certificate``), which
    reloads it on SIGHUP as it does the main listener's: the same ``SSLContext`` then serves
    the replaced files, and unusable files leave the loaded certificate serving."""
    for name in ("first", "second"):
        key, cert = self_signed(f"est-{name}.example", sans=("127.0.0.1",))
        write_cert(tmp_path / f"{name}.pem", cert)
        write_key(tmp_path / f"{name}.key", key)
    (tmp_path / "est.pem").write_bytes((tmp_path / "first.pem").read_bytes())
    (tmp_path / "est.key").write_bytes((tmp_path / "first.key").read_bytes())
    port = free_port()
    cfg = write_est_config(
        tmp_path, est_port=port, est='tls_certificate = "est.pem"\ntls_key = "est.key"\n'
    )
    config = load_config(cfg)
    app = await create_app(config)
    runner = await start_listeners(
        app, config, bind_main(config, reuse_port=False), reuse_port=False
    )
    try:
        (est,) = app[LISTENERS]
        assert est.certificate is not None and est.certificate.context is est.ssl_context
        assert est.certificate in listener_certificates(app)
        first = await asyncio.to_thread(_server_cert, port, tmp_path / "first.pem")
        time.sleep(0.01)  # a new mtime
        for suffix in ("pem", "key"):
            (tmp_path / f"est.{suffix}").write_bytes((tmp_path / f"second.{suffix}").read_bytes())
        await est.certificate.reload("SIGHUP")
        second = await asyncio.to_thread(_server_cert, port, tmp_path / "second.pem")
        assert second != first and second.subject.rfc4514_string() == "CN=est-second.example"
        (tmp_path / "est.key").write_text("not a key\n")
        await est.certificate.reload("SIGHUP")
        assert await asyncio.to_thread(_server_cert, port, tmp_path / "second.pem") == second
    finally:
        await runner.cleanup()
