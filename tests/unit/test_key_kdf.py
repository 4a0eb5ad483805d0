"""CA key files under a chosen passphrase use scrypt with a modern work factor (issue #12
item 16); files written by the old PBKDF2-2,048 encoding still open and are re-encrypted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from asn1crypto import core, pem
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from backends.local_ca import LocalCA
from gateway.pkix import keyfile
from gateway.ports import ConnectorContext

PBES2 = "1.2.840.113549.1.5.13"
SCRYPT = "1.3.6.1.4.1.11591.4.11"
PBKDF2 = "1.2.840.113549.1.5.12"
OWASP_MIN_P = {2**17: 1, 2**16: 2, 2**15: 3, 2**14: 5, 2**13: 10}


class _Journal:
    async def get(self, request_id: str) -> bytes | None:
        return None

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        return certificate_der


@pytest.fixture(autouse=True)
def _chosen_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTGATE_CA_PASSPHRASE", "correct horse battery staple")


def kdf_of(path: Path) -> tuple[str, dict[str, int]]:
    """(KDF OID, its integer parameters) of an encrypted PKCS#8 PEM file."""
    _, _, der = pem.unarmor(path.read_bytes())
    algorithm = core.load(der).native["0"]
    assert algorithm["0"] == PBES2
    kdf = algorithm["1"]["0"]
    ints = {k: v for k, v in kdf["1"].items() if isinstance(v, int)}
    return kdf["0"], ints


async def start(data_dir: Path) -> LocalCA:
    ca = LocalCA(ConnectorContext("local", {}, data_dir, _Journal()))
    await ca.start()
    return ca


async def test_ca_keys_use_scrypt_with_a_modern_work_factor(tmp_path: Path) -> None:
    await (await start(tmp_path)).close()
    for name in ("root.key.pem", "issuing.key.pem"):
        oid, params = kdf_of(tmp_path / "ca" / name)
        assert oid == SCRYPT
        n, r, p = params["1"], params["2"], params["3"]
        # OWASP Password Storage Cheat Sheet: scrypt N=2^17/p=1, 2^16/2, 2^15/3, 2^14/5, 2^13/10.
        assert r >= 8 and p >= OWASP_MIN_P[n]
        # Readable by the OpenSSL command line too (its default scrypt memory limit).
        out = subprocess.run(
            ["openssl", "pkey", "-in", str(tmp_path / "ca" / name), "-noout", "-passin",
             "pass:correct horse battery staple"],
            capture_output=True, timeout=30,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr


async def test_legacy_pbkdf2_key_files_still_open_and_are_re_encrypted(tmp_path: Path) -> None:
    ca = await start(tmp_path)
    chain = await ca.ca_chain()
    await ca.close()
    passphrase = b"correct horse battery staple"
    for name in ("root.key.pem", "issuing.key.pem"):
        path = tmp_path / "ca" / name
        key = serialization.load_pem_private_key(path.read_bytes(), passphrase)
        legacy = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
        path.write_bytes(legacy)
        assert kdf_of(path) == (PBKDF2, {"1": 2048})
    again = await start(tmp_path)
    assert await again.ca_chain() == chain
    await again.close()
    for name in ("root.key.pem", "issuing.key.pem"):
        path = tmp_path / "ca" / name
        assert kdf_of(path)[0] == SCRYPT
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        serialization.load_pem_private_key(path.read_bytes(), passphrase)


def test_has_legacy_kdf_tells_old_from_new() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    new = keyfile.encrypt_private_key(key, b"pw", keyfile.SCRYPT)
    assert keyfile.has_legacy_kdf(old)
    assert not keyfile.has_legacy_kdf(new)
    assert keyfile.has_legacy_kdf(
        keyfile.encrypt_private_key(key, b"pw", keyfile.ScryptParams(2**10, 8, 1))
    )
    loaded = serialization.load_pem_private_key(new, b"pw")
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    assert loaded.private_numbers() == key.private_numbers()
