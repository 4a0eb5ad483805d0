"""The one place secrets presented by clients are hashed for storage and checked.

Two kinds, never mixed up:

* **Passwords** a person chose or was given for reuse (EST Basic users, CES UsernameToken
  accounts): salted scrypt (RFC 7914; N=2^14, r=8, p=1 is ~16 MiB and ~50 ms per check), stored
  as ``scrypt$N$r$p$<base64 salt>$<base64 hash>``. Verification reads the cost and the hash
  length from the stored string, so every hash ever written (EST's and CES's modules wrote this
  very format with these parameters) keeps verifying if the defaults are raised later.
* **One-time secrets** the gateway generated with at least 128 random bits (EST enrollment
  codes, SCEP one-time challenge passwords): an unsalted SHA-256, hex, because the stored form
  must be a lookup key and a random secret has nothing to brute-force.

Key-file encryption (PBES2 with scrypt for private keys, :mod:`gateway.pkix.keyfile`) is a
key-derivation for encryption, not a verification hash, and stays there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

#: scrypt cost of new hashes (RFC 7914 §2).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: Bytes of salt and of hash in new hashes.
SALT_BYTES, HASH_BYTES = 16, 32
#: Largest cost accepted from a stored hash: a corrupted row must not ask for gigabytes.
_MAX_N, _MAX_RP = 2**20, 64


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64 fields) with a fresh random salt unless ``salt``
    is given (only for a fixed dummy hash that evens out the timing of unknown users)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=HASH_BYTES
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (a :func:`hash_password` string), compared in
    constant time. A malformed or unknown-scheme ``stored`` is ``False``, never an error."""
    try:
        scheme, n_text, r_text, p_text, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        n, r, p = int(n_text), int(r_text), int(p_text)
        if not (1 < n <= _MAX_N and 0 < r <= _MAX_RP and 0 < p <= _MAX_RP):
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        if not expected:
            return False
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=n,
            r=r,
            p=p,
            dklen=len(expected),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def secret_digest(secret: str) -> str:
    """The stored form of a random one-time secret: SHA-256 of its UTF-8 bytes, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
