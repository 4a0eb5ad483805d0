"""Which RA certificates the SCEP front-end publishes, and what a client needs to pin them.

Clients that cannot verify the RA certificate through a trusted chain pin it by fingerprint
(RFC 8894 §2.2: "verify ... out-of-band, for example by its fingerprint"; Apple's SCEP payload
``CAFingerprint``, micromdm ``scepclient -ca-fingerprint``, which takes bare hex) and tell the
NDES pair apart by key usage (RFC 8894 §2.1.2; protocols.md 1.6 item 34). Pure functions: the
CLI (``certgate scep ra show``) reads the certificates from the data directory, the serve
banner from the running front-end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.model import serial_hex
from protocols.scep.config import ScepSettings

#: (role, file stem under ``<data dir>/scep``, what the certificate is used for) in the order
#: shown. The stems are those :func:`protocols.scep.ra.load_or_issue` is called with.
ROLES = (
    ("ra", "ra", "signs CertReps and decrypts requests"),
    ("signature", "ra-signature", "signs CertReps (NDES pair)"),
    ("encryption", "ra-encryption", "decrypts requests (NDES pair)"),
)

_KEY_USAGE = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "nonRepudiation"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)
_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH.dotted_string: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string: "clientAuth",
    "1.3.6.1.4.1.311.20.2.1": "certificateRequestAgent",
}


@dataclass(frozen=True)
class PublishedRA:
    """One RA certificate: its role, where it is kept, and the endpoints publishing it."""

    role: str
    duty: str
    path: Path
    endpoints: tuple[str, ...]


def published(settings: ScepSettings, data_dir: Path) -> list[PublishedRA]:
    """The RA certificates in use: the combined RA for ``ra_mode = "combined"`` endpoints
    (always created: NDES-pair endpoints still decrypt with it for clients configured before
    the switch), the signature and encryption pair when an endpoint has ``ndes-pair``."""
    combined = tuple(n for n, e in settings.endpoints.items() if e.ra_mode != "ndes-pair")
    pair = tuple(n for n, e in settings.endpoints.items() if e.ra_mode == "ndes-pair")
    found = []
    for role, stem, duty in ROLES:
        users = combined if role == "ra" else pair
        if role != "ra" and not pair:
            continue
        found.append(PublishedRA(role, duty, data_dir / "scep" / f"{stem}.crt", users))
    return found


def sha256(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, colon-separated upper-case hex (``openssl x509
    -fingerprint -sha256``)."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def key_usage(cert: x509.Certificate) -> list[str]:
    """KeyUsage bits by their RFC 5280 §4.2.1.3 names (empty without the extension)."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return []
    names = [name for attr, name in _KEY_USAGE if getattr(ku, attr)]
    if ku.key_agreement:  # cryptography refuses to read these two without keyAgreement
        if ku.encipher_only:
            names.append("encipherOnly")
        if ku.decipher_only:
            names.append("decipherOnly")
    return names


def extended_key_usage(cert: x509.Certificate) -> list[str]:
    """Extended key usages by name where known, else the dotted OID."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return []
    return [_EKU_NAMES.get(oid.dotted_string, oid.dotted_string) for oid in eku]


def describe(ra: PublishedRA, cert: x509.Certificate) -> dict[str, Any]:
    """Everything ``scep ra show`` reports about one RA certificate (JSON-ready)."""
    return {
        "role": ra.role,
        "duty": ra.duty,
        "endpoints": list(ra.endpoints),
        "file": str(ra.path),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": serial_hex(cert.serial_number),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "sha256": sha256(cert),
        "sha256_hex": cert.fingerprint(hashes.SHA256()).hex(),
        "key_usage": key_usage(cert),
        "extended_key_usage": extended_key_usage(cert),
        "pem": cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    }


def banner(certificates: Iterable[tuple[str, x509.Certificate]]) -> list[tuple[str, str]]:
    """``certgate serve`` banner lines for ``(role, certificate)`` pairs."""
    return [("SCEP RA SHA-256", f"{sha256(cert)} ({role})") for role, cert in certificates]


def render(described: Iterable[dict[str, Any]]) -> str:
    """The text form of :func:`describe` results, one block per certificate."""
    blocks = []
    for d in described:
        where = ", ".join(d["endpoints"]) or "no endpoint"
        lines = [
            f"role        {d['role']}: {d['duty']} ({where})",
            f"file        {d['file']}",
            f"subject     {d['subject']}",
            f"issuer      {d['issuer']}",
            f"serial      {d['serial']}",
            f"valid       {d['not_before']} to {d['not_after']}",
            f"SHA-256     {d['sha256']}",
            f"SHA-256 hex {d['sha256_hex']}",
            f"key usage   {', '.join(d['key_usage']) or '(none)'}",
            f"ext. usage  {', '.join(d['extended_key_usage']) or '(none)'}",
            d["pem"].rstrip("\n"),
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
