"""Test PKI: one certificate builder for the throwaway CAs, leaves, TLS server certificates and
signer certificates the tests need, PEM writers for handing them to real peers, and the
gateway's own issuing CA read back from its data directory (:func:`gateway_ca`) for tests that
must sign as it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from backends.local_ca.bootstrap import ISSUING_PEM, PASSPHRASE_FILE, ca_directory
from backends.local_ca.keystore import CASigner, FileKeyStore
from backends.local_ca.settings import PASSPHRASE_ENV

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
Extension = tuple[x509.ExtensionType, bool]  # (value, critical)


def ec_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def cn_name(cn: str) -> x509.Name:
    """``CN=<cn>``."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def san(*names: str) -> x509.SubjectAlternativeName:
    """A subjectAltName: IP addresses where ``names`` parse as one, DNS names otherwise."""
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(general)


def builder(
    subject: str | x509.Name,
    public_key: CertificatePublicKeyTypes,
    *,
    issuer: str | x509.Name | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    ca: bool = False,
    sans: Sequence[str] = (),
    extensions: Sequence[Extension] = (),
    serial: int | None = None,
) -> x509.CertificateBuilder:
    """An unsigned certificate for ``public_key``.

    ``issuer`` defaults to ``subject`` (self-issued); validity to from a day ago for 30 days;
    ``ca`` adds a critical ``BasicConstraints(ca=True)``; ``sans`` a non-critical
    subjectAltName (see :func:`san`).
    """
    subject_name = cn_name(subject) if isinstance(subject, str) else subject
    issuer_name = cn_name(issuer) if isinstance(issuer, str) else issuer or subject_name
    start = not_before or datetime.now(UTC) - timedelta(days=1)
    result = (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number() if serial is None else serial)
        .not_valid_before(start)
        .not_valid_after(not_after or start + timedelta(days=30))
    )
    if ca:
        result = result.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    if sans:
        result = result.add_extension(san(*sans), critical=False)
    for value, critical in extensions:
        result = result.add_extension(value, critical)
    return result


def certificate(
    subject: str | x509.Name,
    public_key: CertificatePublicKeyTypes,
    signing_key: PrivateKey,
    *,
    digest: hashes.HashAlgorithm | None = None,
    **options: Any,
) -> x509.Certificate:
    """A certificate for ``public_key`` signed by ``signing_key``; ``options`` as for
    :func:`builder`."""
    return builder(subject, public_key, **options).sign(signing_key, digest or hashes.SHA256())


def self_signed(
    cn: str = "leaf", *, key: PrivateKey | None = None, **options: Any
) -> tuple[PrivateKey, x509.Certificate]:
    """A self-signed certificate for ``CN=<cn>`` (a fresh P-256 key unless ``key`` is given);
    ``options`` as for :func:`certificate`."""
    key = key or ec_key()
    return key, certificate(cn, key.public_key(), key, **options)


def issue(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    cn: str | x509.Name,
    *,
    key: PrivateKey | None = None,
    **options: Any,
) -> tuple[PrivateKey, x509.Certificate]:
    """A certificate for ``cn`` issued by ``ca_cert``/``ca_key`` (a fresh P-256 key unless
    ``key`` is given); ``options`` as for :func:`certificate`."""
    key = key or ec_key()
    return key, certificate(cn, key.public_key(), ca_key, issuer=ca_cert.subject, **options)


def valid(from_days: float, to_days: float) -> dict[str, datetime]:
    """Validity ``now + from_days .. now + to_days`` as :func:`builder` options, e.g.
    ``valid(-10, -1)`` for a certificate that expired yesterday."""
    now = datetime.now(UTC)
    return {
        "not_before": now + timedelta(days=from_days),
        "not_after": now + timedelta(days=to_days),
    }


def write_cert(path: Path, *certs: x509.Certificate) -> Path:
    """``certs`` as PEM at ``path``."""
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def write_key(path: Path, key: PrivateKey) -> Path:
    """``key`` as unencrypted PKCS#8 PEM at ``path`` (what curl and openssl take)."""
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def make_ca(directory: Path, name: str) -> tuple[Path, PrivateKey, x509.Certificate]:
    """A self-signed CA ``CN=<name>`` valid for ten years (a bootstrap or manufacturer CA, an
    IDevID issuer), its certificate written to ``<name>.pem``."""
    key, cert = self_signed(name, ca=True, **valid(-1, 3650))
    return write_cert(directory / f"{name}.pem", cert), key, cert


def issue_leaf(
    directory: Path, name: str, ca_key: PrivateKey, ca_cert: x509.Certificate, **options: Any
) -> tuple[Path, Path]:
    """A client certificate ``CN=<name>`` issued by ``ca_cert``, written as ``<name>.crt`` and
    ``<name>.key`` for curl's ``--cert``/``--key``; ``options`` as for :func:`builder`."""
    key, cert = issue(ca_key, ca_cert, name, **options)
    return write_cert(directory / f"{name}.crt", cert), write_key(directory / f"{name}.key", key)


def gateway_ca(data_dir: Path, connector: str = "local") -> tuple[CASigner, x509.Certificate]:
    """The issuing CA of a running gateway's local CA connector, from ``data_dir`` through the
    connector's own key store: the key is decrypted with ``$CERTGATE_CA_PASSPHRASE`` if set,
    else with the generated passphrase file kept beside the keys when none is configured."""
    directory = ca_directory(data_dir, connector)
    configured = os.environ.get(PASSPHRASE_ENV)
    passphrase = (
        configured.encode()
        if configured
        else (directory / PASSPHRASE_FILE).read_bytes().rstrip(b"\r\n")
    )
    signer = FileKeyStore(directory, passphrase).load("issuing")
    cert = x509.load_pem_x509_certificate((directory / ISSUING_PEM).read_bytes())
    return signer, cert
