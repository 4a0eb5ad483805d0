"""The one interface through which the local CA uses its private keys.

Everything above this module holds a :class:`CASigner`: it can sign a certificate or CRL
builder and tell its public key, but it never hands out key material. Two implementations:
:class:`FileKeyStore` keeps each key as an encrypted PKCS#8 PEM file (RFC 5958 §3, PBES2
with scrypt, see :mod:`gateway.pkix.keyfile`) with mode 0600 and holds the decrypted key only
in memory; :mod:`backends.local_ca.pkcs11_store` keeps it in a PKCS#11 token. A token signer
has the token sign the encoded TBSCertificate/TBSCertList and assembles the result
(:func:`signed_certificate`, :func:`signed_crl`), so nothing above this module changes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import SignatureAlgorithmOID

from backends.local_ca import der
from backends.local_ca.settings import KeyAlgorithm
from gateway.pkix import keyfile
from gateway.pkix.der import tlv

#: The software key types a CA may use (Ed25519/Ed448 and DSA CAs are not supported).
CAPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

SignatureHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512

_SHA256 = hashes.SHA256()
_CURVE_HASH: dict[str, SignatureHash] = {
    "secp256r1": _SHA256,
    "secp384r1": hashes.SHA384(),
    "secp521r1": hashes.SHA512(),
}


_ECDSA_SIGNATURE_OIDS = {
    "sha256": SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    "sha384": SignatureAlgorithmOID.ECDSA_WITH_SHA384,
    "sha512": SignatureAlgorithmOID.ECDSA_WITH_SHA512,
}
_RSA_SIGNATURE_OIDS = {
    "sha256": SignatureAlgorithmOID.RSA_WITH_SHA256,
    "sha384": SignatureAlgorithmOID.RSA_WITH_SHA384,
    "sha512": SignatureAlgorithmOID.RSA_WITH_SHA512,
}


class KeyStoreError(Exception):
    """A key is missing, unreadable, unsupported or closed."""


class KeyDecryptionError(KeyStoreError):
    """The key exists but the passphrase does not decrypt it."""

    def __init__(self, location: str) -> None:
        super().__init__(f"cannot decrypt {location}")
        self.location = location


class CASigner(Protocol):
    """A CA private key that signs in place (RFC 5280 §4.1.1.3, §5.1.1.3)."""

    def public_key(self) -> CertificateIssuerPublicKeyTypes: ...

    @property
    def signature_algorithm(self) -> bytes:
        """The DER AlgorithmIdentifier of :meth:`sign_tbs`'s signatures."""
        ...

    def sign_tbs(self, tbs: bytes) -> bytes:
        """The signature over an encoded TBSCertificate (the signatureValue's bits)."""
        ...

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate: ...

    def sign_crl(
        self, builder: x509.CertificateRevocationListBuilder
    ) -> x509.CertificateRevocationList: ...

    def close(self) -> None:
        """Forget the key (release the token session); later signing raises KeyStoreError."""


class KeyStore(Protocol):
    """Where CA keys live, addressed by label (``root``, ``issuing``)."""

    def location(self, label: str) -> str:
        """Where the key is, for messages (a path, a PKCS#11 URI); never key material."""
        ...

    def generate(self, label: str, algorithm: KeyAlgorithm) -> CASigner: ...

    def put(self, label: str, key: CAPrivateKey) -> CASigner:
        """Store an existing key (import); the store encrypts it like a generated one."""
        ...

    def load(self, label: str) -> CASigner: ...


def signature_hash(key: CAPrivateKey | PublicKeyTypes) -> SignatureHash:
    """SHA-256 for RSA and P-256, SHA-384 for P-384, SHA-512 for P-521 (RFC 5758 §3.2)."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise KeyStoreError(f"RSA-{key.key_size} is too small for a CA (at least 2048)")
        return _SHA256
    if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        raise KeyStoreError(f"unsupported CA key type {type(key).__name__} (use RSA or ECDSA)")
    found = _CURVE_HASH.get(key.curve.name)
    if found is None:
        raise KeyStoreError(f"unsupported CA curve {key.curve.name}")
    return found


def signature_algorithm(key: CAPrivateKey | PublicKeyTypes, digest: SignatureHash) -> bytes:
    """The DER AlgorithmIdentifier CertificateBuilder.sign chooses for ``key`` and ``digest``:
    sha*WithRSAEncryption with NULL parameters (RFC 4055 §5), ecdsa-with-SHA* without
    (RFC 5758 §3.2)."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return der.algorithm_identifier(_RSA_SIGNATURE_OIDS[digest.name], null_parameters=True)
    return der.algorithm_identifier(_ECDSA_SIGNATURE_OIDS[digest.name], null_parameters=False)


_throwaway_lock = threading.Lock()
_throwaway: dict[str, CAPrivateKey] = {}


def _throwaway_key(kind: str) -> CAPrivateKey:
    """A key of ``kind`` ("rsa", "ec") whose only use is to have cryptography encode a
    builder's TBS part (its signature is thrown away); made once per process."""
    with _throwaway_lock:
        key = _throwaway.get(kind)
        if key is None:
            key = (
                rsa.generate_private_key(public_exponent=65537, key_size=2048)
                if kind == "rsa"
                else ec.generate_private_key(ec.SECP256R1())
            )
            _throwaway[kind] = key
        return key


def _signed(tbs: bytes, algorithm: bytes, signature: bytes) -> bytes:
    """``SEQUENCE { tbs, signatureAlgorithm, signatureValue BIT STRING }``: the same shape
    for a Certificate (RFC 5280 §4.1.1) and a CertificateList (§5.1.1)."""
    return tlv(0x30, tbs + algorithm + tlv(0x03, b"\x00" + signature))


def _encoder_key(key: PublicKeyTypes) -> CAPrivateKey:
    return _throwaway_key("rsa" if isinstance(key, rsa.RSAPublicKey) else "ec")


def signed_certificate(
    builder: x509.CertificateBuilder,
    key: PublicKeyTypes,
    sign_tbs: Callable[[bytes], bytes],
) -> x509.Certificate:
    """``builder``'s certificate signed by ``sign_tbs`` (a key cryptography cannot hold):
    cryptography encodes the TBSCertificate (signing it with a throwaway key of the same
    algorithm, so the signature AlgorithmIdentifier inside is the right one), ``sign_tbs``
    signs those bytes, and the Certificate is assembled around them. ``key``: the signing
    key's public key (its algorithm and hash choose the signature algorithm)."""
    digest = signature_hash(key)
    tbs = builder.sign(_encoder_key(key), digest).tbs_certificate_bytes
    algorithm = signature_algorithm(key, digest)
    return x509.load_der_x509_certificate(_signed(tbs, algorithm, sign_tbs(tbs)))


def signed_crl(
    builder: x509.CertificateRevocationListBuilder,
    key: PublicKeyTypes,
    sign_tbs: Callable[[bytes], bytes],
) -> x509.CertificateRevocationList:
    """Like :func:`signed_certificate`, for a CRL's TBSCertList (RFC 5280 §5.1.2)."""
    digest = signature_hash(key)
    tbs = builder.sign(_encoder_key(key), digest).tbs_certlist_bytes
    algorithm = signature_algorithm(key, digest)
    return x509.load_der_x509_crl(_signed(tbs, algorithm, sign_tbs(tbs)))


def ca_private_key(key: object) -> CAPrivateKey:
    """``key`` if it is a supported CA key type, else :class:`KeyStoreError`."""
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        signature_hash(key)
        return key
    raise KeyStoreError(f"unsupported CA key type {type(key).__name__} (use RSA or ECDSA)")


class SoftwareSigner:
    """A :class:`CASigner` over a key held in process memory."""

    def __init__(self, key: CAPrivateKey) -> None:
        self._hash = signature_hash(key)
        self._key: CAPrivateKey | None = key
        self._public = key.public_key()
        # The same algorithms CertificateBuilder.sign chooses for these keys and hashes.
        if isinstance(key, rsa.RSAPrivateKey):
            self._scheme: tuple[object, ...] = (padding.PKCS1v15(), self._hash)
        else:
            self._scheme = (ec.ECDSA(self._hash),)
        self._algorithm = signature_algorithm(key, self._hash)

    @property
    def signature_algorithm(self) -> bytes:
        return self._algorithm

    def sign_tbs(self, tbs: bytes) -> bytes:
        return self._private().sign(tbs, *self._scheme)  # type: ignore[arg-type]

    def public_key(self) -> CertificateIssuerPublicKeyTypes:
        return self._public

    def _private(self) -> CAPrivateKey:
        if self._key is None:
            raise KeyStoreError("the CA key has been closed")
        return self._key

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self._private(), self._hash)

    def sign_crl(
        self, builder: x509.CertificateRevocationListBuilder
    ) -> x509.CertificateRevocationList:
        return builder.sign(self._private(), self._hash)

    def close(self) -> None:
        self._key = None


class FileKeyStore:
    """Encrypted PKCS#8 PEM files ``<directory>/<label>.key.pem`` (mode 0600).

    Keys are written once (``O_EXCL``) and never unencrypted; ``passphrase`` decrypts them.
    ``generated``: the passphrase is certgate's own random one (no slow KDF needed, see
    :data:`gateway.pkix.keyfile.SCRYPT_RANDOM_PASSPHRASE`). A key file found with a legacy
    KDF (PBKDF2 at 2,048 iterations, what certgate wrote before) under a chosen passphrase is
    re-encrypted in place when it is loaded (or by :meth:`upgrade`).
    """

    def __init__(self, directory: Path, passphrase: bytes, *, generated: bool = False) -> None:
        if not passphrase:
            raise KeyStoreError("a key store passphrase must not be empty")
        self._directory = directory
        self._passphrase = passphrase
        self._kdf = keyfile.SCRYPT_RANDOM_PASSPHRASE if generated else keyfile.SCRYPT
        self._generated = generated

    def path(self, label: str) -> Path:
        return self._directory / f"{label}.key.pem"

    def location(self, label: str) -> str:
        return str(self.path(label))

    def generate(self, label: str, algorithm: KeyAlgorithm) -> SoftwareSigner:
        return self.put(label, generate_key(algorithm))

    def put(self, label: str, key: CAPrivateKey) -> SoftwareSigner:
        signer = SoftwareSigner(ca_private_key(key))
        write_private_file(self.path(label), self._encrypt(key))
        return signer

    def _encrypt(self, key: CAPrivateKey) -> bytes:
        return keyfile.encrypt_private_key(key, self._passphrase, self._kdf)

    def load(self, label: str) -> SoftwareSigner:
        path = self.path(label)
        data = self._read(path)
        key = self._decrypt(path, data)
        if self._needs_upgrade(data):
            replace_private_file(path, self._encrypt(key))
        return SoftwareSigner(key)

    def upgrade(self, label: str) -> bool:
        """Re-encrypt ``label``'s file with the current KDF if it has a legacy one (keys
        that are never loaded for signing, like the root, are upgraded through this); True if
        it was rewritten."""
        path = self.path(label)
        data = self._read(path)
        if not self._needs_upgrade(data):
            return False  # decrypting costs the full KDF: only when there is work to do
        replace_private_file(path, self._encrypt(self._decrypt(path, data)))
        return True

    def _needs_upgrade(self, data: bytes) -> bool:
        """A chosen passphrase's key file written with a legacy KDF."""
        return not self._generated and keyfile.has_legacy_kdf(data)

    @staticmethod
    def _read(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise KeyStoreError(f"cannot read {path}: {exc.strerror}") from None

    def _decrypt(self, path: Path, data: bytes) -> CAPrivateKey:
        try:
            key = serialization.load_pem_private_key(data, self._passphrase)
        except TypeError:
            # Only an unencrypted key can be loaded without a password: refuse it.
            raise KeyStoreError(f"{path} is not encrypted; CA keys must be") from None
        except ValueError:
            if b"ENCRYPTED PRIVATE KEY" in data:
                raise KeyDecryptionError(str(path)) from None
            raise KeyStoreError(f"{path} is not an encrypted PKCS#8 PEM key") from None
        return ca_private_key(key)


def spki_der(key: PublicKeyTypes) -> bytes:
    """The DER SubjectPublicKeyInfo of ``key`` (to match keys with certificates)."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_key(algorithm: KeyAlgorithm) -> CAPrivateKey:
    """A fresh CA key of ``algorithm``."""
    if algorithm is KeyAlgorithm.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm is KeyAlgorithm.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    bits = 3072 if algorithm is KeyAlgorithm.RSA_3072 else 4096
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (never an existing file) and flush it to disk."""
    write_file(path, data, 0o600)


def replace_private_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (mode 0600): write a temporary file beside
    it, fsync, rename over, fsync the directory; a crash leaves the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    write_private_file(tmp, data)
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` exclusively with ``mode`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
