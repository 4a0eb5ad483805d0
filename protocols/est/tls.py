"""The EST HTTPS listener (RFC 7030 §3.3): its server certificate, its ``SSLContext``, and what
a request learned from TLS (client certificate, protocol version, tls-unique).

The server certificate comes from ``[est] tls_certificate``/``tls_key`` or is issued once by the
gateway's own CA (through the enrollment service, template ``[est] server_template``) for
``[est] server_names`` and kept in ``<data dir>/est/`` (key mode 0600); it is re-issued when the
names change or less than a third of its lifetime is left. Workers serialise this with a file
lock so that ``--workers N`` issues one certificate.

Client certificates are requested, not required, and the handshake completes whoever issued
them (:mod:`protocols.est.tls_request`): OpenSSL checks only that the client holds the
certificate's key. Which anchors count depends on the label in the URL, so the handler verifies
the certificate against that label's anchors (:mod:`protocols.est.client_trust`), and an
untrusted, expired or forged certificate gets a 403 with a reason, or HTTP Basic where the
label accepts it, instead of a bare TLS alert. Should the verify callback not be installable,
the listener falls back to OpenSSL verifying against the union of every label's anchors (time
check off, ``X509_V_FLAG_NO_CHECK_TIME``), and says so in the log.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import ipaddress
import logging
import os
import ssl
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.errors import BadRequest, ConfigError
from gateway.model import EnrollmentRequest, Issued, Requester
from gateway.pkix import pem_chain
from protocols.est.ports import Enrollment
from protocols.est.settings import EstSettings
from protocols.est.tls_request import request_client_certificates

log = logging.getLogger("certgate.est")

#: OpenSSL X509_V_FLAG_NO_CHECK_TIME (not exported by the ssl module).
_NO_CHECK_TIME = 0x200000
_TLS_UNIQUE = frozenset({"TLSv1.2", "TLSv1.1", "TLSv1"})
LISTENER_PRINCIPAL = "certgate-est-listener"


async def server_credentials(
    settings: EstSettings, service: Enrollment, data_dir: Path, config_file: str
) -> tuple[Path, Path]:
    """Paths of the listener's PEM chain and key: configured, or issued through ``service``
    (kept in ``<data_dir>/est``); ``config_file`` names the configuration in errors."""
    if settings.tls_certificate and settings.tls_key:
        return settings.tls_certificate, settings.tls_key
    directory = data_dir / "est"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    lock = await asyncio.to_thread(_lock, directory / ".lock")
    try:
        if not _usable(cert_path, key_path, settings.server_names):
            await _issue(settings, service, config_file, cert_path, key_path)
    finally:
        os.close(lock)
    return cert_path, key_path


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _names(names: tuple[str, ...]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _usable(cert_path: Path, key_path: Path, names: tuple[str, ...]) -> bool:
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    if set(sans) != set(_names(names)):
        return False
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - datetime.now(UTC) > lifetime / 3


async def _issue(
    settings: EstSettings,
    service: Enrollment,
    config_file: str,
    cert_path: Path,
    key_path: Path,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, settings.server_names[0])])
        )
        .add_extension(x509.SubjectAlternativeName(_names(settings.server_names)), critical=False)
        .sign(key, hashes.SHA256())
    )
    request = EnrollmentRequest(
        csr=csr,
        template=settings.server_template,
        requester=Requester("est", LISTENER_PRINCIPAL, "local"),
        transaction_id=f"est-listener:{uuid.uuid4()}",
    )
    outcome = await service.enroll(request)
    if not isinstance(outcome, Issued):
        raise ConfigError(
            config_file,
            "est.server_names",
            f"the local CA did not issue the EST server certificate: {outcome}",
        )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp_key = key_path.with_suffix(".tmp")
    fd = os.open(tmp_key, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    os.replace(tmp_key, key_path)
    tmp_cert = cert_path.with_suffix(".tmp")
    tmp_cert.write_bytes(pem_chain(outcome.full_chain))
    os.replace(tmp_cert, cert_path)


def server_context(
    cert_path: Path, key_path: Path, anchors: tuple[x509.Certificate, ...]
) -> ssl.SSLContext:
    """TLS 1.2 and 1.3, client certificates requested; whoever issued one, the handshake
    completes and the handler judges it per label (``anchors``, the union of all labels',
    are OpenSSL's only where that cannot be arranged)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.verify_flags |= _NO_CHECK_TIME
    # tls-unique must stay the handshake's: no renegotiation (RFC 7030 §3.5).
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.load_verify_locations(cadata=pem_chain(anchors).decode())
    if not request_client_certificates(ctx):
        log.warning(
            "EST listener: cannot take over TLS client certificate verification in this Python "
            "(%s); client certificates from issuers no label trusts will fail the handshake",
            sys.version.split()[0],
        )
    return ctx


@dataclass(frozen=True)
class TransportFacts:
    """What the connection proved: ``via`` is ``"tls"`` (our listener), ``"proxy"`` (a trusted
    TLS-terminating proxy forwarded the client certificate) or ``"plain"``."""

    via: str
    peer: str | None
    client_certificate: x509.Certificate | None = None
    tls_version: str | None = None
    tls_unique: bytes | None = None
    #: why a client certificate presented in the handshake cannot be used (None: none or fine)
    client_certificate_problem: str | None = None


def transport_facts(
    ssl_object: ssl.SSLObject | ssl.SSLSocket | None,
    peer: str | None,
    forwarded_cert: str | None,
    settings: EstSettings,
) -> TransportFacts:
    """Classify a request's connection. A forwarded client certificate header is honoured only
    from ``[est] trusted_proxies``; tls-unique is ``None`` on TLS 1.3 (RFC 8446 App. C.5)."""
    if ssl_object is not None:
        der = ssl_object.getpeercert(binary_form=True)
        cert, problem = None, None
        try:
            cert = x509.load_der_x509_certificate(der) if der else None
        except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
            # The handshake takes any certificate (protocols.est.tls_request): one OpenSSL
            # parsed but cryptography refuses (a v2 certificate, say) is a client error,
            # never a 500.
            problem = f"the TLS client certificate cannot be decoded: {str(exc)[:120]}"
        if der is None and forwarded_cert and settings.trusts_proxy(peer):
            return TransportFacts("proxy", peer, parse_forwarded_certificate(forwarded_cert))
        version = ssl_object.version()
        # tls-unique is undefined for TLS 1.3 (RFC 8446 App. C.5; RFC 9266), whatever OpenSSL
        # hands back for it there.
        binding = ssl_object.get_channel_binding("tls-unique") if version in _TLS_UNIQUE else None
        return TransportFacts("tls", peer, cert, version, binding, problem)
    if settings.trusts_proxy(peer):
        cert = parse_forwarded_certificate(forwarded_cert) if forwarded_cert else None
        return TransportFacts("proxy", peer, cert)
    return TransportFacts("plain", peer)


def parse_forwarded_certificate(value: str) -> x509.Certificate:
    """A client certificate forwarded by a proxy: URL-encoded PEM (nginx
    ``$ssl_client_escaped_cert``, HAProxy, Envoy) or bare base64 DER."""
    text = unquote(value).strip()
    try:
        if "-----BEGIN" in text:
            return x509.load_pem_x509_certificate(text.encode())
        return x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))
    except (ValueError, x509.InvalidVersion):  # InvalidVersion is no ValueError
        raise BadRequest("the forwarded client certificate header cannot be parsed") from None


def directly_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True if ``issuer`` signed ``cert`` (name match and signature; no time check)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm
        return False
    return True
