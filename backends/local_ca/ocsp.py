"""The local CA's OCSP signer: a delegated responder certificate, issued and renewed here.

RFC 6960 §4.2.2.2: a response is signed by the CA itself or by a responder the CA names in a
certificate with id-kp-OCSPSigning; that certificate carries id-pkix-ocsp-nocheck
(§4.2.2.2.1), so clients do not ask about the responder, and is therefore short-lived
(:attr:`gateway.ports.OCSPSettings.signer_validity`, 7 days by default) and renewed when a
third of its lifetime is left.

The responder key is one more key of the CA's key store, under the label ``ocsp`` (an
encrypted ``ocsp.key.pem`` beside the CA keys, or a key pair in the PKCS#11 token), generated
on first use and kept across renewals: only the certificate (``ocsp.pem`` in the CA directory)
is renewed, so a token never accumulates keys. Responses are signed through the key store's
``CASigner.sign_tbs`` only, never with a key object.

Several processes on one data directory (``--workers``) renew under an ``flock`` and re-read
``ocsp.pem`` first, so one of them issues and the others adopt it; instances with data
directories of their own each keep their own responder certificate, all valid at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from backends.local_ca.keystore import CASigner, KeyStore, KeyStoreError, spki_der
from backends.local_ca.settings import KeyAlgorithm
from gateway.ports import OCSPSettings, OCSPSigner

log = logging.getLogger(__name__)

OCSP_LABEL = "ocsp"
OCSP_PEM = "ocsp.pem"
#: Backdating for clock skew, as the CA's own certificates.
_BACKDATE = timedelta(hours=1)
#: Seconds before a failed renewal is tried again.
_RETRY_AFTER = 300


class OCSPResponder:
    """The signer of one local CA's OCSP responses (:meth:`signer`)."""

    def __init__(
        self,
        settings: OCSPSettings,
        ca_signer: CASigner,
        chain: tuple[x509.Certificate, ...],
        keys: KeyStore | None,
        directory: Path,
        key_algorithm: KeyAlgorithm,
        subject: x509.Name,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._ca_signer = ca_signer
        self._issuer = chain[0]
        self._keys = keys
        self._directory = directory
        self._algorithm = key_algorithm
        self._subject = subject
        self._now = clock
        self._key: CASigner | None = None
        self._current: OCSPSigner | None = None
        self._renew_at = 0.0  # POSIX time from which the certificate is due
        self._lock = asyncio.Lock()
        if not settings.delegated or keys is None:
            self._current = self._ca_signed()
            self._renew_at = float("inf")

    def _ca_signed(self) -> OCSPSigner:
        """Responses signed by the CA key itself (RFC 6960 §4.2.2.2, first case)."""
        signer = self._ca_signer
        issuer = self._issuer
        return OCSPSigner(
            issuer,
            issuer,
            (),
            signer.signature_algorithm,
            signer.sign_tbs,
            issuer.not_valid_after_utc,
        )

    async def signer(self) -> OCSPSigner:
        """The current signer; the delegated certificate is renewed first when due."""
        current = self._current
        if current is not None and self._now().timestamp() < self._renew_at:
            return current
        async with self._lock:
            now = self._now()
            if self._current is None or now.timestamp() >= self._renew_at:
                try:
                    await asyncio.to_thread(self._refresh, now)
                except (KeyStoreError, OSError) as exc:
                    self._renew_at = now.timestamp() + _RETRY_AFTER
                    current = self._current
                    if current is None or now >= current.not_after:
                        # Never no answer: the CA key may always sign (RFC 6960 §4.2.2.2).
                        log.warning(
                            "no OCSP responder certificate (%s): signing OCSP responses with "
                            "the CA key until it can be issued",
                            exc,
                        )
                        self._current = self._ca_signed()
                    else:
                        log.warning("renewing the OCSP responder certificate failed: %s", exc)
            assert self._current is not None
            return self._current

    def close(self) -> None:
        if self._key is not None:
            self._key.close()
            self._key = None
        self._current = None

    # -- the delegated certificate --------------------------------------------------------

    def _refresh(self, now: datetime) -> None:
        """Adopt ``ocsp.pem`` if it is current for our key and CA, else issue a new one."""
        with _flock(self._directory / f".{OCSP_PEM}.lock"):
            key = self._key or self._responder_key()
            self._key = key
            path = self._directory / OCSP_PEM
            found = self._read(path)
            issued = found is None or self._due(found, key, now)
            certificate = self._issue(key, now) if issued or found is None else found
            if issued:
                _replace(path, certificate.public_bytes(serialization.Encoding.PEM))
                log.info(
                    "issued the OCSP responder certificate %x, valid until %s",
                    certificate.serial_number,
                    certificate.not_valid_after_utc.isoformat(),
                )
        not_before = certificate.not_valid_before_utc
        not_after = certificate.not_valid_after_utc
        renew_at = not_after - (not_after - not_before) / 3
        # Never sooner than a retry interval: a certificate clipped to an issuing CA about to
        # expire is due at once, and must not be issued again on every request.
        self._renew_at = max(renew_at.timestamp(), now.timestamp() + _RETRY_AFTER)
        self._current = OCSPSigner(
            self._issuer,
            certificate,
            (certificate,),
            key.signature_algorithm,
            key.sign_tbs,
            not_after,
            issued=issued,
        )

    def _responder_key(self) -> CASigner:
        assert self._keys is not None
        try:
            return self._keys.load(OCSP_LABEL)
        except KeyStoreError as missing:
            try:
                key = self._keys.generate(OCSP_LABEL, self._algorithm)
            except FileExistsError:
                raise missing from None  # it is there but unusable: say why
            log.info("generated the OCSP responder key %s", self._keys.location(OCSP_LABEL))
            return key

    @staticmethod
    def _read(path: Path) -> x509.Certificate | None:
        try:
            return x509.load_pem_x509_certificate(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s (%s): issuing a new one", path, exc)
            return None

    def _due(self, certificate: x509.Certificate, key: CASigner, now: datetime) -> bool:
        """Not ours (another key or CA), or a third of its lifetime or less left."""
        if spki_der(certificate.public_key()) != spki_der(key.public_key()):
            return True
        try:
            certificate.verify_directly_issued_by(self._issuer)
        except (ValueError, TypeError, InvalidSignature):
            return True
        not_before = certificate.not_valid_before_utc
        not_after = certificate.not_valid_after_utc
        return now >= not_after - (not_after - not_before) / 3

    def _issue(self, key: CASigner, now: datetime) -> x509.Certificate:
        """The responder certificate (RFC 6960 §4.2.2.2): end entity, digitalSignature,
        id-kp-OCSPSigning, id-pkix-ocsp-nocheck, within the issuing CA's validity."""
        now = now.replace(microsecond=0)
        not_after = min(now + self._settings.signer_validity, self._issuer.not_valid_after_utc)
        public = key.public_key()
        try:
            ski = self._issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_signer.public_key())
        builder = (
            x509.CertificateBuilder()
            .subject_name(self._subject)
            .issuer_name(self._issuer.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(max(now - _BACKDATE, self._issuer.not_valid_before_utc))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(aki, critical=False)
        )
        return self._ca_signer.sign_certificate(builder)


def responder_name(organization: str, prefix: str) -> x509.Name:
    """``O=<organization>, CN=<prefix> OCSP Responder`` (the CA's own naming)."""
    attributes = []
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, f"{prefix} OCSP Responder"))
    return x509.Name(attributes)


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` atomically (mode 0644: a certificate): temporary file, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
