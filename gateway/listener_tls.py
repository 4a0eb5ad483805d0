"""A TLS listener's certificate: from configured files, or issued by the gateway's own CA and
kept; renewed when due; loaded into one ``SSLContext`` and reloaded without a restart.

Shared by the main listener (``[server.tls]``, :mod:`gateway.server.tls`) and the listeners
front-ends open (EST's mutual-TLS port, :mod:`protocols.est.frontend`), which hand theirs to
the server shell as :attr:`gateway.plugin.Listener.certificate`.

A :class:`CertificateSource` says where the certificate comes from: configured files are used
as they are; otherwise it is issued through the enrollment service for ``names`` (template and
requester of the source) and kept in ``directory`` as ``server.pem``/``server.key`` (key mode
0600), and re-issued when the names change or a third of its lifetime is left. A file lock in
the directory makes ``--workers N`` issue one. :class:`ListenerCertificate` checks again every
:data:`CHECK_INTERVAL` while serving (:meth:`ListenerCertificate.run`), and whenever the shell
asks (SIGHUP, :meth:`ListenerCertificate.reload`): a renewed or replaced certificate is loaded
into the same ``SSLContext``, so new connections get it and open ones are untouched.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import os
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.errors import ConfigError
from gateway.model import EnrollmentRequest, Issued, Outcome, Requester
from gateway.pkix import pem_chain

__all__ = [
    "CHECK_INTERVAL",
    "CertificateSource",
    "Enroller",
    "ListenerCertificate",
    "server_context",
]

#: How often a serving process looks at a listener's certificate (renewal due, file replaced).
CHECK_INTERVAL = 3600.0


class Enroller(Protocol):
    """What issuing a listener certificate needs of the enrollment service."""

    async def enroll(self, request: EnrollmentRequest) -> Outcome:
        """Judge and issue ``request`` (an ``Issued`` outcome, or the listener cannot start)."""
        ...


@dataclass(frozen=True)
class CertificateSource:
    """Where a listener's certificate comes from, and how errors about it name the
    configuration: ``config_key`` for files that cannot be loaded, ``names_key`` when the CA
    refuses; ``what`` names the certificate in log lines and errors."""

    what: str
    config_file: str
    config_key: str
    names_key: str
    names: tuple[str, ...]
    template: str
    requester: Requester
    directory: Path
    certificate: Path | None = None
    key: Path | None = None


def server_context() -> ssl.SSLContext:
    """A server ``SSLContext`` for TLS 1.2 and later, without a certificate yet."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


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


def usable(cert_path: Path, key_path: Path, names: tuple[str, ...], now: datetime) -> bool:
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


def _replace(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


async def _issue(source: CertificateSource, service: Enroller, log: logging.Logger) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, source.names[0])]))
        .add_extension(x509.SubjectAlternativeName(_general_names(source.names)), critical=False)
        .sign(key, hashes.SHA256())
    )
    outcome = await service.enroll(
        EnrollmentRequest(
            csr=csr,
            template=source.template,
            requester=source.requester,
            transaction_id=f"{source.requester.protocol}-listener:{uuid.uuid4()}",
        )
    )
    if not isinstance(outcome, Issued):
        raise ConfigError(
            source.config_file,
            source.names_key,
            f"the CA did not issue the {source.what}: {outcome}",
        )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _replace(source.directory / "server.key", key_pem, 0o600)
    _replace(source.directory / "server.pem", pem_chain(outcome.full_chain), 0o644)
    log.info("issued the %s for %s", source.what, ", ".join(source.names))


async def credentials(
    source: CertificateSource, service: Enroller, log: logging.Logger
) -> tuple[Path, Path]:
    """Paths of the listener's PEM chain and key: configured, or issued now if there is none
    yet or the one there is due (see the module docstring)."""
    if source.certificate is not None and source.key is not None:
        return source.certificate, source.key
    directory = source.directory
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    lock = await asyncio.to_thread(_lock, directory / ".lock")
    try:
        if not usable(cert_path, key_path, source.names, datetime.now(UTC)):
            await _issue(source, service, log)
    finally:
        os.close(lock)
    return cert_path, key_path


class ListenerCertificate:
    """A listener's ``SSLContext`` and the certificate files it was loaded from. The context
    is built by the caller (:func:`server_context` plus what the listener needs: ALPN, client
    certificates) and stays the same object for the listener's life."""

    def __init__(
        self,
        source: CertificateSource,
        service: Enroller,
        context: ssl.SSLContext,
        log: logging.Logger,
    ) -> None:
        self.source = source
        self.service = service
        self.context = context
        self.log = log
        self._loaded: tuple[float, float] | None = None
        self.fingerprint = ""

    async def start(self) -> None:
        """Obtain and load the certificate (:class:`ConfigError` if it cannot be loaded)."""
        await self.refresh()

    async def refresh(self) -> bool:
        """Renew the certificate if it is due, and load the files if they changed since they
        were last loaded. True when a new certificate was loaded."""
        source = self.source
        cert_path, key_path = await credentials(source, self.service, self.log)
        try:
            stamp = (cert_path.stat().st_mtime, key_path.stat().st_mtime)
        except OSError as exc:
            raise ConfigError(
                source.config_file, source.config_key, f"cannot read {exc.filename}: {exc.strerror}"
            ) from None
        if stamp == self._loaded:
            return False
        try:
            self.context.load_cert_chain(cert_path, key_path)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
            raise ConfigError(
                source.config_file,
                source.config_key,
                f"cannot load {cert_path} with {key_path}: {reason}",
            ) from None
        self._loaded = stamp
        leaf = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        self.fingerprint = leaf.fingerprint(hashes.SHA256()).hex(":").upper()
        return True

    async def reload(self, why: str) -> None:
        """:meth:`refresh`, logging what happened instead of raising (a serving process keeps
        its current certificate when the new files are unusable)."""
        try:
            if await self.refresh():
                self.log.info("%s loaded (%s): SHA-256 %s", self.source.what, why, self.fingerprint)
        except Exception as exc:  # keep serving with the certificate already loaded
            self.log.error("%s not reloaded (%s): %s", self.source.what, why, exc)

    async def run(self, stop: asyncio.Event) -> None:
        """Check every :data:`CHECK_INTERVAL` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), CHECK_INTERVAL)
            except TimeoutError:
                await self.reload("periodic check")
