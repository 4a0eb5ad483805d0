"""One password-hashing module (gateway.passwords) for EST users and CES accounts, and one
digest for generated one-time secrets (EST codes, SCEP challenges). Hashes already stored by the
former per-protocol modules keep verifying."""

from __future__ import annotations

import base64
import hashlib

import pytest

from gateway.passwords import SCRYPT_N, hash_password, secret_digest, verify_password
from protocols.est import state as est_state
from protocols.wstep import users as wstep_users

#: Written by protocols/est/state.py's own hash_password before gateway.passwords existed.
EST_STORED = (
    "scrypt$16384$8$1$tSBXEdX9Pv7qXkibC1qkkw==$LA2zodbYZTsziq0gY/bPK+JRgRIS/C/3VxJmmIUoAl8="
)
#: Written by protocols/wstep/users.py's own hash_password before gateway.passwords existed.
CES_STORED = (
    "scrypt$16384$8$1$T1yKGaSoHpFE+S81Hu+1GA==$sMQMZlPYKmMQx+Rzz1fIW5QN1zK/h6S74IpB05k1638="
)


@pytest.mark.parametrize(
    ("stored", "password"),
    [(EST_STORED, "est-s3cret pässword"), (CES_STORED, "ces-s3cret pässword")],
)
def test_hashes_stored_by_the_former_modules_still_verify(stored: str, password: str) -> None:
    assert verify_password(password, stored)
    assert not verify_password(password + "x", stored)


def test_new_hashes_are_salted_scrypt_in_the_stored_format() -> None:
    a, b = hash_password("pw"), hash_password("pw")
    assert a != b and a.startswith(f"scrypt${SCRYPT_N}$8$1$")
    assert verify_password("pw", a) and verify_password("pw", b)


def test_a_cheaper_stored_cost_still_verifies() -> None:
    """The cost is read from the stored hash, so raising the defaults later breaks nothing."""
    salt = b"s" * 16
    digest = hashlib.scrypt(b"pw", salt=salt, n=2**10, r=8, p=1, dklen=32)
    stored = (
        f"scrypt$1024$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )
    assert verify_password("pw", stored)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "garbage",
        "bcrypt$x",
        "scrypt$16384$8$1$AAAA",
        "scrypt$x$8$1$AAAA$AAAA",
        "scrypt$1073741824$8$1$AAAA$AAAA",
        "scrypt$16384$8$1$AAAA$",
    ],
)
def test_malformed_stored_hashes_are_false_not_errors(stored: str) -> None:
    assert verify_password("pw", stored) is False


def test_the_protocols_use_the_one_module() -> None:
    assert est_state.hash_password is hash_password
    assert est_state.verify_password is verify_password
    assert wstep_users.hash_password is hash_password
    assert wstep_users.check_password is verify_password


def test_one_time_secret_digests_are_the_sha256_already_stored() -> None:
    """EST codes and SCEP challenges are looked up by digest: the stored form is unchanged."""
    assert secret_digest("ABC") == hashlib.sha256(b"ABC").hexdigest()
    assert est_state.code_hash("abcd-efgh") == hashlib.sha256(b"ABCDEFGH").hexdigest()
