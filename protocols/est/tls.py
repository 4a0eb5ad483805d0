"""The EST HTTPS listener (RFC 7030 §3.3): its server certificate, its ``SSLContext``, and what
a request learned from TLS (client certificate, protocol version, tls-unique).

The server certificate comes from ``[est] tls_certificate``/``tls_key`` or is issued by the
gateway's own CA (through the enrollment service, template ``[est] server_template``) for
``[est] server_names`` and kept in ``<data dir>/est/`` (key mode 0600); it is re-issued when the
names change or less than a third of its lifetime is left, one certificate for ``--workers N``,
and reloaded on SIGHUP like the main listener's: :mod:`gateway.listener_tls` does all of that.

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

import base64
import logging
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509

from gateway.errors import BadRequest
from gateway.listener_tls import CertificateSource, ListenerCertificate
from gateway.listener_tls import server_context as new_server_context
from gateway.model import Requester
from gateway.pkix import pem_chain
from protocols.est.ports import Enrollment
from protocols.est.settings import EstSettings
from protocols.est.tls_request import request_client_certificates

log = logging.getLogger("certgate.est")

#: OpenSSL X509_V_FLAG_NO_CHECK_TIME (not exported by the ssl module).
_NO_CHECK_TIME = 0x200000
_TLS_UNIQUE = frozenset({"TLSv1.2", "TLSv1.1", "TLSv1"})
LISTENER_PRINCIPAL = "certgate-est-listener"


def listener_certificate(
    settings: EstSettings,
    service: Enrollment,
    data_dir: Path,
    config_file: str,
    anchors: tuple[x509.Certificate, ...],
) -> ListenerCertificate:
    """The listener's certificate (configured, or issued through ``service`` and kept in
    ``<data_dir>/est``) in the :func:`server_context` for ``anchors``, not loaded yet:
    :meth:`ListenerCertificate.start` obtains and loads it, and the server shell renews and
    reloads it like the main listener's (:mod:`gateway.listener_tls`). ``config_file`` names
    the configuration in errors."""
    source = CertificateSource(
        what="EST listener certificate",
        config_file=config_file,
        config_key="est",
        names_key="est.server_names",
        names=settings.server_names,
        template=settings.server_template,
        requester=Requester("est", LISTENER_PRINCIPAL, "local"),
        directory=data_dir / "est",
        certificate=settings.tls_certificate,
        key=settings.tls_key,
    )
    return ListenerCertificate(source, service, server_context(anchors), log)


def server_context(anchors: tuple[x509.Certificate, ...]) -> ssl.SSLContext:
    """TLS 1.2 and 1.3, client certificates requested; whoever issued one, the handshake
    completes and the handler judges it per label (``anchors``, the union of all labels',
    are OpenSSL's only where that cannot be arranged). No server certificate yet: see
    :func:`listener_certificate`."""
    ctx = new_server_context()
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
