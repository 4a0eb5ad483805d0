"""PKIX helpers shared by the core and every front-end: parsing CSRs and certificates at the
edge (library ``ValueError`` becomes :class:`gateway.errors.BadCSR`), PEM rendering, names.

CMS/PKCS#7 helpers (SCEP, EST) will live beside this module in ``gateway.pkix``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization

from gateway.errors import BadCSR, BadRequest
from gateway.pkix.csr import csr_public_key

_PEM_CSR = (b"-----BEGIN CERTIFICATE REQUEST-----", b"-----BEGIN NEW CERTIFICATE REQUEST-----")


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse a PKCS#10 request (RFC 2986) given as PEM, DER or bare base64 DER.

    Raises :class:`BadCSR` for anything that is not a well-formed request. The signature is
    *not* checked here: that is policy rule ``csr-signature``.
    """
    # Binary DER first, unstripped: its last byte may well be a whitespace byte (0x20, 0x0a...).
    stripped = data if data[:1] == b"\x30" else data.strip()
    try:
        if any(stripped.startswith(marker) for marker in _PEM_CSR):
            if stripped.startswith(_PEM_CSR[1]):
                stripped = stripped.replace(b"NEW CERTIFICATE REQUEST", b"CERTIFICATE REQUEST")
            csr = x509.load_pem_x509_csr(stripped)
        elif stripped[:1] == b"\x30":
            csr = x509.load_der_x509_csr(stripped)
        else:
            der = base64.b64decode(b"".join(stripped.split()), validate=True)
            csr = x509.load_der_x509_csr(der)
    except (ValueError, binascii.Error, TypeError, x509.InvalidVersion) as exc:
        # InvalidVersion (a CSR version other than v1) is no ValueError in cryptography.
        raise BadCSR(f"not a valid PKCS#10 certificate request: {_short(exc)}") from None
    # The key is decoded lazily; every front-end fingerprints it before policy runs, so a key
    # of an algorithm cryptography does not know must be refused here, not deep inside.
    try:
        csr_public_key(csr)  # remembered for policy and the key fingerprint
    except UnsupportedAlgorithm as exc:
        raise BadCSR(f"the CSR's public key algorithm is not supported: {_short(exc)}") from None
    except ValueError as exc:
        raise BadCSR(f"the CSR's public key cannot be decoded: {_short(exc)}") from None
    return csr


def load_certificate(data: bytes) -> x509.Certificate:
    """Parse one X.509 certificate in PEM or DER; :class:`BadRequest` otherwise."""
    stripped = data if data[:1] == b"\x30" else data.strip()  # DER may end in 0x20/0x0a
    try:
        if stripped.startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(stripped)
        return x509.load_der_x509_certificate(stripped)
    except (ValueError, x509.InvalidVersion) as exc:
        raise BadRequest(f"not a valid X.509 certificate: {_short(exc)}") from None


def pem_chain(certificates: Iterable[x509.Certificate]) -> bytes:
    """Concatenated PEM, leaf first (the ACME/CLI download format)."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 fingerprint as colon-separated upper-case hex (as ``openssl x509 -fingerprint``)."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def san_strings(
    certificate_or_sans: x509.Certificate | Iterable[x509.GeneralName],
) -> tuple[str, ...]:
    """SANs as ``type:value`` strings (``dns:a.example``, ``ip:192.0.2.1``, ``uri:...``)."""
    if isinstance(certificate_or_sans, x509.Certificate):
        try:
            ext = certificate_or_sans.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            )
        except x509.ExtensionNotFound:
            return ()
        names: Iterable[x509.GeneralName] = ext.value
    else:
        names = certificate_or_sans
    out: list[str] = []
    for name in names:
        if isinstance(name, x509.DNSName):
            out.append(f"dns:{name.value}")
        elif isinstance(name, x509.IPAddress):
            out.append(f"ip:{name.value}")
        elif isinstance(name, x509.RFC822Name):
            out.append(f"email:{name.value}")
        elif isinstance(name, x509.UniformResourceIdentifier):
            out.append(f"uri:{name.value}")
        else:
            out.append(f"other:{name.value!r}")
    return tuple(out)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
