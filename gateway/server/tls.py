"""TLS on the main listener (``[server.tls]``): its certificate, its ``SSLContext``, renewal and
reload.

The certificate and key come from ``[server.tls] certificate``/``key``, or are issued by the
gateway's own CA through the enrollment service (template ``[server.tls] template``, requester
``certgate-listener``) for ``[server.tls] names`` and kept in ``<data dir>/tls/`` (key mode
0600). An issued certificate is re-issued when the names change or a third of its lifetime is
left, as EST's listener does (:mod:`protocols.est.tls`); a file lock makes ``--workers N`` issue
one. :class:`ListenerCertificate` checks again every :data:`CHECK_INTERVAL` while serving, and
on SIGHUP: a renewed (or, with configured files, replaced) certificate is loaded into the same
``SSLContext``, so new connections get it without a restart and open ones are untouched.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import os
import ssl
import uuid
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.config import Config, ServerTLSConfig
from gateway.errors import ConfigError
from gateway.model import EnrollmentRequest, Issued, Requester
from gateway.pkix import pem_chain
from gateway.service import EnrollmentService

log = logging.getLogger("certgate.server")

LISTENER_PRINCIPAL = "certgate-listener"
#: How often a serving process looks at its certificate (renewal due, file replaced).
CHECK_INTERVAL = 3600.0


def _general_names(names: tuple[str, ...]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _usable(cert_path: Path, key_path: Path, names: tuple[str, ...], now: datetime) -> bool:
    """An issued certificate still serves: present, for exactly ``names``, and more than a
    third of its lifetime left."""
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    if set(sans) != set(_general_names(names)):
        return False
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now > lifetime / 3


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


async def _issue(
    settings: ServerTLSConfig, service: EnrollmentService, file: str, directory: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, settings.names[0])]))
        .add_extension(x509.SubjectAlternativeName(_general_names(settings.names)), critical=False)
        .sign(key, hashes.SHA256())
    )
    outcome = await service.enroll(
        EnrollmentRequest(
            csr=csr,
            template=settings.template,
            requester=Requester("server", LISTENER_PRINCIPAL, "local"),
            transaction_id=f"server-listener:{uuid.uuid4()}",
        )
    )
    if not isinstance(outcome, Issued):
        raise ConfigError(
            file, "server.tls.names", f"the CA did not issue the listener certificate: {outcome}"
        )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(directory / "server.key", key_pem)
    tmp = directory / "server.pem.tmp"
    tmp.write_bytes(pem_chain(outcome.full_chain))
    os.replace(tmp, directory / "server.pem")
    log.info("issued the listener certificate for %s", ", ".join(settings.names))


async def ensure_credentials(config: Config, service: EnrollmentService) -> tuple[Path, Path]:
    """Paths of the main listener's PEM chain and key: configured, or issued by the CA now
    if there is none yet or the one there is due (see the module docstring)."""
    settings = config.server.tls
    assert settings is not None
    if settings.certificate is not None and settings.key is not None:
        return settings.certificate, settings.key
    directory = config.data_dir / "tls"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    lock = await asyncio.to_thread(_lock, directory / ".lock")
    try:
        if not _usable(cert_path, key_path, settings.names, datetime.now(UTC)):
            await _issue(settings, service, config.file, directory)
    finally:
        os.close(lock)
    return cert_path, key_path


def _load(ctx: ssl.SSLContext, cert_path: Path, key_path: Path, file: str) -> None:
    try:
        ctx.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ConfigError(
            file, "server.tls", f"cannot load {cert_path} with {key_path}: {reason}"
        ) from None


class ListenerCertificate:
    """The main listener's ``SSLContext`` and the files it was loaded from."""

    def __init__(self, config: Config, service: EnrollmentService) -> None:
        self.config = config
        self.service = service
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["http/1.1"])
        self._loaded: tuple[float, float] | None = None
        self.fingerprint = ""

    async def start(self) -> None:
        """Obtain and load the certificate (:class:`ConfigError` if it cannot be loaded)."""
        await self.refresh()

    async def refresh(self) -> bool:
        """Renew the certificate if it is due, and load the files if they changed since they
        were last loaded. True when a new certificate was loaded."""
        cert_path, key_path = await ensure_credentials(self.config, self.service)
        try:
            stamp = (cert_path.stat().st_mtime, key_path.stat().st_mtime)
        except OSError as exc:
            raise ConfigError(
                self.config.file, "server.tls", f"cannot read {exc.filename}: {exc.strerror}"
            ) from None
        if stamp == self._loaded:
            return False
        _load(self.context, cert_path, key_path, self.config.file)
        self._loaded = stamp
        leaf = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        self.fingerprint = leaf.fingerprint(hashes.SHA256()).hex(":").upper()
        return True

    async def reload(self, why: str) -> None:
        """:meth:`refresh`, logging what happened instead of raising (a serving process keeps
        its current certificate when the new files are unusable)."""
        try:
            if await self.refresh():
                log.info("listener certificate loaded (%s): SHA-256 %s", why, self.fingerprint)
        except Exception as exc:  # keep serving with the certificate already loaded
            log.error("listener certificate not reloaded (%s): %s", why, exc)

    async def run(self, stop: asyncio.Event) -> None:
        """Check every :data:`CHECK_INTERVAL` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), CHECK_INTERVAL)
            except TimeoutError:
                await self.reload("periodic check")
