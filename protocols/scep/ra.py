"""The SCEP registration authority: one RSA key pair and its certificate.

Clients encrypt requests to the RA certificate's key (key transport needs RSA, RFC 8894 §3.1,
even when the CA key is EC) and verify CertReps signed by it. On first start, and whenever the
certificate is due or no longer chains to the current issuing CA, the front-end generates (or
reuses) the key and enrolls it through the enrollment service under the internal template
``scep-ra``, so the issuance is recorded and audited like any other (plus an
``scep.ra-certificate`` audit event).

Files in ``<data dir>/scep/``: ``ra.key`` (PKCS#8, encrypted by :mod:`gateway.pkix.keyfile`,
mode 0600), ``ra.crt`` (PEM), and ``passphrase`` only when none is configured and
``$CERTGATE_CA_PASSPHRASE`` is unset. Several worker processes start at once, so the whole
bootstrap runs under an exclusive file lock.

Endpoints with ``ra_mode = "ndes-pair"`` publish NDES's two RA certificates instead
(protocols.md 1.6 item 34): ``ra-signature.{key,crt}`` (KU digitalSignature, signs CertReps,
template ``scep-ra-signature``) and ``ra-encryption.{key,crt}`` (KU keyEncipherment, decrypts
requests, template ``scep-ra-encryption``), each with its own RSA key, bootstrapped the same
way by :func:`load_or_issue` with another ``stem``.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.errors import ConfigError, InternalError
from gateway.model import EnrollmentRequest, Issued, Requester
from gateway.pkix import keyfile
from gateway.pkix.csr import spki_fingerprint
from gateway.policy import CertificateTemplate, renewal_window
from protocols.scep.ports import Clock, Enrollment, Records, Templates

RA_PRINCIPAL = "certgate-scep-ra"
PASSPHRASE_ENV = "CERTGATE_CA_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)
RSA_BITS = 2048


@dataclass(frozen=True)
class RegistrationAuthority:
    """The RA key and certificate plus the CA chain (issuing CA first) published with it."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    ca_chain: tuple[x509.Certificate, ...]


@dataclass(frozen=True)
class NdesPair:
    """NDES's RA pair (RFC 8894 §2.1.2; protocols.md 1.6 item 34): ``signing`` signs CertReps
    (KU digitalSignature), ``encryption`` decrypts pkcsPKIEnvelopes (KU keyEncipherment)."""

    signing: RegistrationAuthority
    encryption: RegistrationAuthority


def _passphrase(directory: Path, configured: str | None) -> bytes:
    if configured is not None:
        return configured.encode("utf-8")
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env.encode("utf-8")
    path = directory / "passphrase"
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(32).encode("ascii"))
    return path.read_bytes().rstrip(b"\r\n")


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _load_or_create_key(
    path: Path, passphrase: bytes, config_file: str, kdf: keyfile.ScryptParams
) -> rsa.RSAPrivateKey:
    if path.exists():
        data = path.read_bytes()
        try:
            key = serialization.load_pem_private_key(data, passphrase)
        except (ValueError, TypeError):
            raise ConfigError(
                config_file,
                "scep.ra_key_passphrase",
                f"cannot decrypt the SCEP RA key {path}: wrong passphrase",
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigError(config_file, "scep", f"{path} is not an RSA key")
        if kdf is keyfile.SCRYPT and keyfile.has_legacy_kdf(data):
            _write_private(path, keyfile.encrypt_private_key(key, passphrase, kdf))
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    _write_private(path, keyfile.encrypt_private_key(key, passphrase, kdf))
    return key


def _usable(
    cert: x509.Certificate,
    key: rsa.RSAPrivateKey,
    chain: tuple[x509.Certificate, ...],
    template_major: int,
    template: CertificateTemplate,
    now: datetime,
) -> bool:
    """The RA certificate matches the key, is signed by the current issuing CA and is not yet
    due for renewal under the RA template."""
    if spki_fingerprint(cert.public_key()) != spki_fingerprint(key.public_key()):
        return False
    if not chain or cert.issuer != chain[0].subject:
        return False
    try:
        cert.verify_directly_issued_by(chain[0])
    except Exception:  # any verification failure means: re-issue
        return False
    start, _ = renewal_window(cert.not_valid_before_utc, cert.not_valid_after_utc, template)
    return now < start and template_major >= template.major_version


async def load_or_issue(
    service: Enrollment,
    store: Records,
    templates: Templates,
    clock: Clock,
    data_dir: Path,
    template_name: str,
    configured_passphrase: str | None,
    config_file: str,
    *,
    stem: str = "ra",
    common_name: str = "certgate SCEP RA",
) -> RegistrationAuthority:
    """The RA identity in ``<stem>.key``/``<stem>.crt``, issuing its certificate under
    ``template_name`` first if there is none or it is due."""
    directory = data_dir / "scep"
    directory.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(directory / "ra.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, lock_fd, fcntl.LOCK_EX)
        passphrase = _passphrase(directory, configured_passphrase)
        chosen = configured_passphrase is not None or bool(os.environ.get(PASSPHRASE_ENV))
        kdf = keyfile.SCRYPT if chosen else keyfile.SCRYPT_RANDOM_PASSPHRASE
        key = _load_or_create_key(directory / f"{stem}.key", passphrase, config_file, kdf)
        template = templates.template(template_name)
        chain = await service.ca_chain(template.connector)
        cert_path = directory / f"{stem}.crt"
        if cert_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            major = _template_major(cert)
            if _usable(cert, key, chain, major, template, clock.now()):
                return RegistrationAuthority(cert, key, chain)
        cert = await _issue(service, store, clock, key, template_name, common_name)
        _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return RegistrationAuthority(cert, key, chain)
    finally:
        os.close(lock_fd)  # releases the lock


def _template_major(cert: x509.Certificate) -> int:
    from gateway.policy import read_template_extension

    try:
        ext = read_template_extension(cert)
    except ValueError:
        return 0
    return ext.major if ext is not None else 0


async def _issue(
    service: Enrollment,
    store: Records,
    clock: Clock,
    key: rsa.RSAPrivateKey,
    template_name: str,
    common_name: str,
) -> x509.Certificate:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    requester = Requester(protocol="scep", principal=RA_PRINCIPAL, auth_method="local")
    # A fresh transaction per issuance: re-issuing (due, new CA) must not replay the old one.
    txn = f"ra:{clock.now().strftime('%Y%m%dT%H%M%S')}:{secrets.token_hex(6)}"
    outcome = await service.enroll(EnrollmentRequest(csr, template_name, requester, txn))
    if not isinstance(outcome, Issued):
        raise InternalError(f"the SCEP RA certificate was not issued: {outcome}")
    await store.audit(
        "scep.ra-certificate",
        RA_PRINCIPAL,
        serial=format(outcome.certificate.serial_number, "x"),
        detail={"template": template_name, "transaction_id": txn},
    )
    return outcome.certificate
