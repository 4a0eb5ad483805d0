"""Password-encrypted private key files: PKCS#8 ``EncryptedPrivateKeyInfo`` (RFC 5958 §3) with
PBES2 (RFC 8018 §6.2) = scrypt (RFC 7914 §7) + AES-256-CBC (RFC 8018 §B.2.5, RFC 3565).

Why not ``BestAvailableEncryption``: cryptography encrypts PKCS#8 with PBKDF2-HMAC-SHA256 at
2,048 iterations and offers no knob for PKCS#8, a work factor a GPU tries passphrases against
by the billion. scrypt is memory-hard; the parameters below are one of OWASP's equivalent
scrypt settings (N=2^14, r=8, p=5), whose 16 MiB stays under OpenSSL's default scrypt memory
limit (32 MiB), so ``openssl pkey -in <file>`` reads the files as well as cryptography does.
Reading goes through cryptography's loader, which accepts both this and the legacy PBKDF2
form; :func:`has_legacy_kdf` tells a caller that a file should be written again.
"""

from __future__ import annotations

import base64
import os
import textwrap
from dataclasses import dataclass

from asn1crypto import core
from asn1crypto import pem as asn1_pem
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gateway.pkix.der import SEQUENCE, integer, oid, tlv


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost parameters (RFC 7914 §2): CPU/memory cost ``n``, block size ``r``,
    parallelization ``p``; memory is 128 * r * n bytes."""

    n: int = 2**14
    r: int = 8
    p: int = 5


#: What key files are written with when a person chose the passphrase.
SCRYPT = ScryptParams()

#: For a passphrase certgate generated (256 random bits, kept in a 0600 file beside the key):
#: no work factor makes a 256-bit secret any harder to guess, and whoever can read the key
#: file can read the passphrase file next to it, so the key is not re-derived slowly at every
#: start (or in every test that creates a CA).
SCRYPT_RANDOM_PASSPHRASE = ScryptParams(n=2**10, r=8, p=1)

#: PBKDF2 at or above this many iterations counts as modern (OWASP 2023, HMAC-SHA256).
MIN_PBKDF2_ITERATIONS = 600_000

_PBES2 = "1.2.840.113549.1.5.13"
_SCRYPT = "1.3.6.1.4.1.11591.4.11"
_PBKDF2 = "1.2.840.113549.1.5.12"
_AES256_CBC = "2.16.840.1.101.3.4.1.42"
_PEM_LABEL = "ENCRYPTED PRIVATE KEY"


def encrypt_private_key(
    key: PrivateKeyTypes, passphrase: bytes, params: ScryptParams = SCRYPT
) -> bytes:
    """``key`` as a PEM ``ENCRYPTED PRIVATE KEY`` (PBES2: scrypt + AES-256-CBC)."""
    if not passphrase:
        raise ValueError("a key file passphrase must not be empty")
    plain = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt = os.urandom(16)
    iv = os.urandom(16)
    derived = Scrypt(salt=salt, length=32, n=params.n, r=params.r, p=params.p).derive(passphrase)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(derived), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    # scrypt-params ::= SEQUENCE { salt OCTET STRING, costParameter, blockSize,
    #                              parallelizationParameter, keyLength OPTIONAL }  (RFC 7914 §7)
    kdf = tlv(
        SEQUENCE,
        oid(_SCRYPT)
        + tlv(
            SEQUENCE,
            tlv(0x04, salt) + integer(params.n) + integer(params.r) + integer(params.p),
        ),
    )
    cipher = tlv(SEQUENCE, oid(_AES256_CBC) + tlv(0x04, iv))
    algorithm = tlv(SEQUENCE, oid(_PBES2) + tlv(SEQUENCE, kdf + cipher))
    der = tlv(SEQUENCE, algorithm + tlv(0x04, encrypted))
    return _pem(der)


def _pem(der: bytes) -> bytes:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN {_PEM_LABEL}-----\n{body}\n-----END {_PEM_LABEL}-----\n".encode()


def has_legacy_kdf(pem: bytes) -> bool:
    """True if ``pem`` is an encrypted PKCS#8 key whose KDF is weaker than what is written
    now: PBES1 (RFC 8018 §6.1), PBKDF2 below :data:`MIN_PBKDF2_ITERATIONS`, or scrypt with
    less work or memory than :data:`SCRYPT`. False for anything else, including text that is
    not such a key (the loader reports that)."""
    try:
        _, _, der = asn1_pem.unarmor(pem)
        # EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm, encryptedData }, read
        # generically: asn1crypto has no type for scrypt's parameters.
        algorithm = core.load(der).native["0"]
        if algorithm["0"] != _PBES2:
            return True
        kdf = algorithm["1"]["0"]
        if kdf["0"] == _PBKDF2:
            return int(kdf["1"]["1"]) < MIN_PBKDF2_ITERATIONS
        if kdf["0"] == _SCRYPT:
            n, r, p = int(kdf["1"]["1"]), int(kdf["1"]["2"]), int(kdf["1"]["3"])
            want = SCRYPT
            return n * r * p < want.n * want.r * want.p or n * r < want.n * want.r
        return False
    except (ValueError, KeyError, TypeError, IndexError):
        return False
