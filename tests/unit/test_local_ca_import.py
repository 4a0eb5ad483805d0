"""An existing issuing CA (PEM or PKCS#12) is adopted on first start, its key re-encrypted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from backends.local_ca import LocalCA
from gateway.errors import CAUnavailable, ConfigError
from gateway.model import IssuancePlan, Issued
from gateway.ports import ConnectorContext

CA_PASS = "ca-store-passphrase"
IMPORT_PASS = "import-passphrase"


class _MemoryJournal:
    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    async def get(self, request_id: str) -> bytes | None:
        return self.entries.get(request_id)

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        return self.entries.setdefault(request_id, certificate_der)


@dataclass(frozen=True)
class _ExternalCA:
    root: x509.Certificate
    issuing: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = True,
    days: int = 365,
) -> x509.Certificate:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(issuer_key, hashes.SHA256())
    )


def _external_ca(*, issuing_days: int = 365) -> _ExternalCA:
    root_key = ec.generate_private_key(ec.SECP256R1())
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    root = _ca_cert("Corp Root", root_key, "Corp Root", root_key, days=3650)
    issuing = _ca_cert("Corp Issuing", issuing_key, "Corp Root", root_key, days=issuing_days)
    return _ExternalCA(root, issuing, issuing_key)


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _write_pem_import(directory: Path, ext: _ExternalCA) -> dict[str, Any]:
    (directory / "issuing.pem").write_bytes(_pem(ext.issuing))
    (directory / "chain.pem").write_bytes(_pem(ext.root))
    (directory / "issuing.key").write_bytes(
        ext.issuing_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(IMPORT_PASS.encode()),
        )
    )
    return {
        "import_certificate": str(directory / "issuing.pem"),
        "import_key": str(directory / "issuing.key"),
        "import_key_passphrase": "env:CERTGATE_TEST_IMPORT_PASS",
        "import_chain": str(directory / "chain.pem"),
    }


@pytest.fixture(autouse=True)
def _passphrases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTGATE_CA_PASSPHRASE", CA_PASS)
    monkeypatch.setenv("CERTGATE_TEST_IMPORT_PASS", IMPORT_PASS)


async def _started(data_dir: Path, settings: dict[str, Any]) -> LocalCA:
    ca = LocalCA(ConnectorContext("local", settings, data_dir, _MemoryJournal()))
    await ca.start()
    return ca


def _plan(request_id: str = "req-1") -> IssuancePlan:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name("leaf.example")
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    now = datetime.now(UTC)
    return IssuancePlan(
        request_id, "t", "1.3.6.1.4.1.311.21.8.1", 1, 0, "local", subject, key.public_key(),
        now, now + timedelta(days=10), (), csr,
    )  # fmt: skip


async def test_pem_import_serves_the_imported_chain(tmp_path: Path) -> None:
    ext = _external_ca()
    ca = await _started(tmp_path / "data", _write_pem_import(tmp_path, ext))
    assert await ca.ca_chain() == (ext.issuing, ext.root)


async def test_imported_ca_issues_certificates_that_chain_to_the_imported_root(
    tmp_path: Path,
) -> None:
    ext = _external_ca()
    ca = await _started(tmp_path / "data", _write_pem_import(tmp_path, ext))
    outcome = await ca.submit(_plan())
    assert isinstance(outcome, Issued)
    outcome.certificate.verify_directly_issued_by(ext.issuing)
    assert outcome.chain == (ext.issuing, ext.root)


async def test_imported_key_is_re_encrypted_with_the_ca_passphrase(tmp_path: Path) -> None:
    ext = _external_ca()
    await _started(tmp_path / "data", _write_pem_import(tmp_path, ext))
    pem = (tmp_path / "data" / "ca" / "issuing.key.pem").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in pem
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(pem, IMPORT_PASS.encode())
    key = serialization.load_pem_private_key(pem, CA_PASS.encode())
    assert key.public_key() == ext.issuing_key.public_key()
    assert not (tmp_path / "data" / "ca" / "root.key.pem").exists()


async def test_imported_ca_keeps_working_after_the_import_files_are_removed(
    tmp_path: Path,
) -> None:
    ext = _external_ca()
    settings = _write_pem_import(tmp_path, ext)
    await (await _started(tmp_path / "data", settings)).close()
    (tmp_path / "issuing.key").unlink()
    (tmp_path / "issuing.pem").unlink()
    ca = await _started(tmp_path / "data", settings)
    assert (await ca.ca_chain())[0] == ext.issuing


async def test_changing_the_import_source_later_is_refused(tmp_path: Path) -> None:
    first = tmp_path / "first"
    first.mkdir()
    await _started(tmp_path / "data", _write_pem_import(first, _external_ca()))
    second = tmp_path / "second"
    second.mkdir()
    with pytest.raises(ConfigError) as caught:
        await _started(tmp_path / "data", _write_pem_import(second, _external_ca()))
    assert caught.value.key_path == "connectors.local.import_certificate"


@pytest.mark.parametrize("chain_in_p12", [True, False])
async def test_pkcs12_import_serves_the_imported_chain(tmp_path: Path, chain_in_p12: bool) -> None:
    ext = _external_ca()
    p12 = pkcs12.serialize_key_and_certificates(
        b"issuing",
        ext.issuing_key,
        ext.issuing,
        [ext.root] if chain_in_p12 else None,
        serialization.BestAvailableEncryption(IMPORT_PASS.encode()),
    )
    (tmp_path / "ca.p12").write_bytes(p12)
    settings: dict[str, Any] = {
        "import_pkcs12": str(tmp_path / "ca.p12"),
        "import_pkcs12_passphrase": "env:CERTGATE_TEST_IMPORT_PASS",
    }
    if not chain_in_p12:
        (tmp_path / "chain.pem").write_bytes(_pem(ext.root))
        settings["import_chain"] = str(tmp_path / "chain.pem")
    ca = await _started(tmp_path / "data", settings)
    assert await ca.ca_chain() == (ext.issuing, ext.root)


async def test_pkcs12_with_a_wrong_passphrase_names_the_passphrase_key(tmp_path: Path) -> None:
    ext = _external_ca()
    p12 = pkcs12.serialize_key_and_certificates(
        b"issuing", ext.issuing_key, ext.issuing, [ext.root],
        serialization.BestAvailableEncryption(b"something else"),
    )  # fmt: skip
    (tmp_path / "ca.p12").write_bytes(p12)
    settings = {
        "import_pkcs12": str(tmp_path / "ca.p12"),
        "import_pkcs12_passphrase": "env:CERTGATE_TEST_IMPORT_PASS",
    }
    with pytest.raises(ConfigError) as caught:
        await _started(tmp_path / "data", settings)
    assert caught.value.key_path == "connectors.local.import_pkcs12_passphrase"


async def test_import_without_the_chain_to_a_root_is_refused(tmp_path: Path) -> None:
    settings = _write_pem_import(tmp_path, _external_ca())
    del settings["import_chain"]
    with pytest.raises(ConfigError, match="chain up to the root") as caught:
        await _started(tmp_path / "data", settings)
    assert caught.value.key_path == "connectors.local.import_certificate"
    assert not (tmp_path / "data" / "ca").exists()


async def test_import_with_a_wrong_key_passphrase_names_the_passphrase_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _write_pem_import(tmp_path, _external_ca())
    monkeypatch.setenv("CERTGATE_TEST_IMPORT_PASS", "not it")
    with pytest.raises(ConfigError, match="wrong passphrase") as caught:
        await _started(tmp_path / "data", settings)
    assert caught.value.key_path == "connectors.local.import_key_passphrase"


async def test_import_of_a_key_that_does_not_match_the_certificate_is_refused(
    tmp_path: Path,
) -> None:
    ext = _external_ca()
    settings = _write_pem_import(tmp_path, ext)
    other = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "issuing.key").write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(IMPORT_PASS.encode()),
        )
    )
    with pytest.raises(ConfigError, match="does not match"):
        await _started(tmp_path / "data", settings)


async def test_import_of_a_non_ca_certificate_is_refused(tmp_path: Path) -> None:
    root_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root = _ca_cert("Corp Root", root_key, "Corp Root", root_key)
    leaf = _ca_cert("leaf", leaf_key, "Corp Root", root_key, ca=False)
    settings = _write_pem_import(tmp_path, _ExternalCA(root, leaf, leaf_key))
    with pytest.raises(ConfigError, match="not a CA"):
        await _started(tmp_path / "data", settings)


async def test_unreadable_import_file_names_its_key(tmp_path: Path) -> None:
    settings = _write_pem_import(tmp_path, _external_ca())
    (tmp_path / "issuing.key").unlink()
    with pytest.raises(ConfigError) as caught:
        await _started(tmp_path / "data", settings)
    assert caught.value.key_path == "connectors.local.import_key"


async def test_an_imported_ca_that_has_expired_is_unavailable(tmp_path: Path) -> None:
    ca = await _started(
        tmp_path / "data", _write_pem_import(tmp_path, _external_ca(issuing_days=-1))
    )
    with pytest.raises(CAUnavailable, match="expired"):
        await ca.check()
    with pytest.raises(CAUnavailable):
        await ca.submit(_plan())
