"""Loading an existing issuing CA (PEM certificate + key, or PKCS#12) for import.

Import happens once, on first start: :mod:`.bootstrap` re-encrypts the imported key into the
data directory's key store with the CA passphrase, so afterwards it lives there encrypted
exactly like a generated key and the import files may be removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from backends.local_ca.keystore import CAPrivateKey, KeyStoreError, ca_private_key, spki_der
from backends.local_ca.settings import ImportSource, LocalCASettings

_MAX_CHAIN = 8


@dataclass(frozen=True)
class ImportedCA:
    """An issuing CA to adopt; ``issuers`` runs from its issuer up to the root (empty when the
    imported certificate is itself a self-signed root)."""

    key: CAPrivateKey = field(repr=False)
    certificate: x509.Certificate
    issuers: tuple[x509.Certificate, ...]


def load_import(source: ImportSource, settings: LocalCASettings) -> ImportedCA:
    """Read, decrypt and check the import material; every problem names its setting."""
    if source.pkcs12 is not None:
        key, cert, extra = _load_pkcs12(source.pkcs12, source.pkcs12_passphrase, settings)
        cert_key = "import_pkcs12"
    else:
        assert source.certificate is not None and source.key is not None
        certs = _load_certificates(source.certificate, "import_certificate", settings)
        cert, extra = certs[0], certs[1:]
        key = _load_key(source.key, source.key_passphrase, settings)
        cert_key = "import_certificate"
    if source.chain is not None:
        extra = extra + _load_certificates(source.chain, "import_chain", settings)
    try:
        ca_key = ca_private_key(key)
    except KeyStoreError as exc:
        raise settings.error(cert_key, str(exc)) from None
    if spki_der(ca_key.public_key()) != spki_der(cert.public_key()):
        raise settings.error(cert_key, "the private key does not match the certificate")
    _check_ca_certificate(cert, settings, cert_key)
    chain_key = "import_chain" if source.chain is not None else cert_key
    return ImportedCA(ca_key, cert, _issuers(cert, extra, settings, chain_key))


def imported_certificate(source: ImportSource) -> x509.Certificate | None:
    """The certificate the import source names, or ``None`` if it can no longer be read (an
    operator may delete the import files once the CA has been imported)."""
    try:
        if source.pkcs12 is not None:
            _, cert, _ = pkcs12.load_key_and_certificates(
                source.pkcs12.read_bytes(), source.pkcs12_passphrase
            )
            return cert
        assert source.certificate is not None
        return x509.load_pem_x509_certificates(source.certificate.read_bytes())[0]
    except (OSError, ValueError, TypeError):
        return None


def _read(path: Path, key: str, settings: LocalCASettings) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise settings.error(key, f"cannot read {path}: {exc.strerror}") from None


def _load_certificates(
    path: Path, key: str, settings: LocalCASettings
) -> tuple[x509.Certificate, ...]:
    try:
        return tuple(x509.load_pem_x509_certificates(_read(path, key, settings)))
    except ValueError:
        raise settings.error(key, f"{path} holds no PEM certificate") from None


def _load_key(path: Path, passphrase: bytes | None, settings: LocalCASettings) -> object:
    data = _read(path, "import_key", settings)
    try:
        return serialization.load_pem_private_key(data, passphrase)
    except TypeError:
        if passphrase is None:
            raise settings.error(
                "import_key_passphrase", f"{path} is encrypted: set import_key_passphrase"
            ) from None
        raise settings.error("import_key_passphrase", f"{path} is not encrypted") from None
    except ValueError:
        if passphrase is not None and b"ENCRYPTED" in data:
            raise settings.error(
                "import_key_passphrase", f"cannot decrypt {path}: wrong passphrase"
            ) from None
        raise settings.error("import_key", f"{path} holds no PEM private key") from None


def _load_pkcs12(
    path: Path, passphrase: bytes | None, settings: LocalCASettings
) -> tuple[object, x509.Certificate, tuple[x509.Certificate, ...]]:
    data = _read(path, "import_pkcs12", settings)
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, passphrase)
    except (ValueError, TypeError):
        raise settings.error(
            "import_pkcs12_passphrase",
            f"cannot read {path}: not PKCS#12, or wrong import_pkcs12_passphrase",
        ) from None
    if key is None or cert is None:
        raise settings.error("import_pkcs12", f"{path} must hold a private key and its certificate")
    return key, cert, tuple(extra)


def _check_ca_certificate(cert: x509.Certificate, settings: LocalCASettings, key: str) -> None:
    """RFC 5280 §4.2.1.9 and §4.2.1.3: a CA certificate that may sign certificates and CRLs."""
    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise settings.error(key, "the certificate is not a CA (BasicConstraints cA false)")
    except x509.ExtensionNotFound:
        raise settings.error(key, "the certificate has no BasicConstraints: not a CA") from None
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.key_cert_sign and usage.crl_sign):
        raise settings.error(key, "the certificate's KeyUsage lacks keyCertSign or cRLSign")


def _issuers(
    cert: x509.Certificate,
    candidates: tuple[x509.Certificate, ...],
    settings: LocalCASettings,
    key: str,
) -> tuple[x509.Certificate, ...]:
    """Order ``candidates`` into the path from ``cert``'s issuer up to a self-signed root."""
    path: list[x509.Certificate] = []
    current = cert
    while not _issued_by(current, current):
        issuer = next((c for c in candidates if _issued_by(current, c)), None)
        if issuer is None:
            raise settings.error(
                key,
                f"no issuer certificate for {current.issuer.rfc4514_string()!r}: "
                "import_chain must hold the chain up to the root",
            )
        if len(path) >= _MAX_CHAIN or issuer in path:
            raise settings.error(key, "the issuer chain is too long or loops")
        path.append(issuer)
        current = issuer
    return tuple(path)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
