"""First start creates the CA once (encrypted keys, RFC 5280 CA extensions); then it is loaded."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from backends.local_ca import LocalCA
from backends.local_ca.bootstrap import WrongCAPassphrase
from gateway.errors import CAUnavailable, ConfigError
from gateway.ports import ConnectorContext

KEY_FILES = ("root.key.pem", "issuing.key.pem")
CA_FILES = {"root.pem", "issuing.pem", "chain.pem", *KEY_FILES}


class _MemoryJournal:
    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    async def get(self, request_id: str) -> bytes | None:
        return self.entries.get(request_id)

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        return self.entries.setdefault(request_id, certificate_der)


@pytest.fixture(autouse=True)
def _no_ambient_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTGATE_CA_PASSPHRASE", raising=False)


def _ca(data_dir: Path, settings: dict[str, Any] | None = None, name: str = "local") -> LocalCA:
    return LocalCA(ConnectorContext(name, settings or {}, data_dir, _MemoryJournal()))


async def _started(data_dir: Path, settings: dict[str, Any] | None = None) -> LocalCA:
    ca = _ca(data_dir, settings)
    await ca.start()
    return ca


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension[Any]:
    return cert.extensions.get_extension_for_class(kind)


@pytest.fixture
async def chain(tmp_path: Path) -> AsyncIterator[tuple[x509.Certificate, ...]]:
    ca = await _started(tmp_path)
    yield await ca.ca_chain()
    await ca.close()


# -- generated CA ---------------------------------------------------------------------------


async def test_first_start_writes_certificates_keys_and_generated_passphrase(
    tmp_path: Path,
) -> None:
    await _started(tmp_path)
    assert {p.name for p in (tmp_path / "ca").iterdir()} == CA_FILES | {"passphrase"}


def test_root_is_a_self_signed_ca_that_signs_certificates_and_crls(
    chain: tuple[x509.Certificate, ...],
) -> None:
    root = chain[-1]
    root.verify_directly_issued_by(root)
    constraints = _ext(root, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length is None
    usage = _ext(root, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    ski = _ext(root, x509.SubjectKeyIdentifier).value
    assert _ext(root, x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest


def test_issuing_ca_is_signed_by_the_root_with_path_length_zero(
    chain: tuple[x509.Certificate, ...],
) -> None:
    issuing, root = chain
    issuing.verify_directly_issued_by(root)
    constraints = _ext(issuing, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = _ext(issuing, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    root_ski = _ext(root, x509.SubjectKeyIdentifier).value.digest
    assert _ext(issuing, x509.AuthorityKeyIdentifier).value.key_identifier == root_ski
    assert _ext(issuing, x509.SubjectKeyIdentifier).value.digest != root_ski


def test_issuing_ca_lies_within_the_root_validity(chain: tuple[x509.Certificate, ...]) -> None:
    issuing, root = chain
    assert root.not_valid_before_utc <= issuing.not_valid_before_utc
    assert issuing.not_valid_after_utc <= root.not_valid_after_utc


async def test_names_and_lifetimes_follow_the_settings(tmp_path: Path) -> None:
    ca = await _started(
        tmp_path,
        {
            "common_name_prefix": "Example",
            "organization": "Example Org",
            "root_validity": "30d",
            "issuing_validity": "10d",
        },
    )
    issuing, root = await ca.ca_chain()
    assert root.subject.rfc4514_string() == "CN=Example Root CA,O=Example Org"
    assert issuing.subject.rfc4514_string() == "CN=Example Issuing CA,O=Example Org"
    now = datetime.now(UTC)
    assert abs(root.not_valid_after_utc - (now + timedelta(days=30))) < timedelta(minutes=1)
    assert abs(issuing.not_valid_after_utc - (now + timedelta(days=10))) < timedelta(minutes=1)


async def test_issuing_validity_longer_than_the_root_is_clipped_to_the_root(
    tmp_path: Path,
) -> None:
    ca = await _started(tmp_path, {"root_validity": "5d", "issuing_validity": "1y"})
    issuing, root = await ca.ca_chain()
    assert issuing.not_valid_after_utc == root.not_valid_after_utc


async def test_ec_p256_is_the_default_and_signs_with_sha256(
    chain: tuple[x509.Certificate, ...],
) -> None:
    issuing, _ = chain
    public = issuing.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    assert isinstance(issuing.signature_hash_algorithm, hashes.SHA256)


async def test_ec_p384_ca_signs_with_sha384(tmp_path: Path) -> None:
    ca = await _started(tmp_path, {"key_algorithm": "ec-p384"})
    issuing, root = await ca.ca_chain()
    assert isinstance(issuing.signature_hash_algorithm, hashes.SHA384)
    assert isinstance(root.signature_hash_algorithm, hashes.SHA384)


@pytest.fixture(scope="module")
def rsa_ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One RSA-3072 CA per module: RSA key generation is slow."""
    data_dir = tmp_path_factory.mktemp("rsa")
    asyncio.run(_started(data_dir, {"key_algorithm": "rsa-3072"}))
    return data_dir


async def test_rsa_3072_is_selectable(rsa_ca_dir: Path) -> None:
    ca = await _started(rsa_ca_dir, {"key_algorithm": "rsa-3072"})
    for cert in await ca.ca_chain():
        public = cert.public_key()
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 3072
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)


# -- keys at rest ---------------------------------------------------------------------------


async def test_private_keys_are_encrypted_pkcs8_readable_only_by_the_owner(
    tmp_path: Path,
) -> None:
    await _started(tmp_path)
    for name in (*KEY_FILES, "passphrase"):
        path = tmp_path / "ca" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for name in KEY_FILES:
        assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in (tmp_path / "ca" / name).read_bytes()


async def test_no_file_in_the_data_directory_holds_a_plaintext_key(tmp_path: Path) -> None:
    await _started(tmp_path)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"BEGIN PRIVATE KEY" not in data
            assert b"BEGIN EC PRIVATE KEY" not in data
            assert b"BEGIN RSA PRIVATE KEY" not in data


async def test_keys_decrypt_with_the_generated_passphrase(tmp_path: Path) -> None:
    await _started(tmp_path)
    passphrase = (tmp_path / "ca" / "passphrase").read_bytes()
    for name in KEY_FILES:
        pem = (tmp_path / "ca" / name).read_bytes()
        serialization.load_pem_private_key(pem, passphrase)


async def test_second_start_loads_the_same_ca(tmp_path: Path) -> None:
    first = await _started(tmp_path)
    created = await first.ca_chain()
    await first.close()
    second = await _started(tmp_path)
    assert await second.ca_chain() == created


async def test_wrong_passphrase_is_a_config_error_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTGATE_CA_PASSPHRASE", "the right one")
    await _started(tmp_path)
    monkeypatch.setenv("CERTGATE_CA_PASSPHRASE", "a wrong one")
    with pytest.raises(WrongCAPassphrase) as caught:
        await _started(tmp_path)
    assert isinstance(caught.value, ConfigError)
    assert caught.value.key_path == "connectors.local.passphrase"
    message = str(caught.value)
    assert f"cannot decrypt the CA key {tmp_path / 'ca' / 'issuing.key.pem'}" in message
    assert "wrong passphrase" in message
    assert "CERTGATE_CA_PASSPHRASE" in message


async def test_configured_passphrase_leaves_no_passphrase_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTGATE_TEST_CA_PASS", "configured")
    await _started(tmp_path, {"passphrase": "env:CERTGATE_TEST_CA_PASS"})
    assert not (tmp_path / "ca" / "passphrase").exists()
    pem = (tmp_path / "ca" / "issuing.key.pem").read_bytes()
    serialization.load_pem_private_key(pem, b"configured")


async def test_generated_passphrase_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="backends.local_ca"):
        await _started(tmp_path)
        await _started(tmp_path)
    warnings = [r for r in caplog.records if "generated passphrase" in r.getMessage()]
    assert len(warnings) == 1
    passphrase = (tmp_path / "ca" / "passphrase").read_text()
    assert passphrase not in caplog.text


async def test_missing_passphrase_for_an_existing_ca_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTGATE_CA_PASSPHRASE", "set at creation")
    await _started(tmp_path)
    monkeypatch.delenv("CERTGATE_CA_PASSPHRASE")
    with pytest.raises(ConfigError) as caught:
        await _started(tmp_path)
    assert caught.value.key_path == "connectors.local.passphrase"


async def test_a_connector_not_named_local_keeps_its_own_ca_directory(tmp_path: Path) -> None:
    ca = _ca(tmp_path, name="lab")
    await ca.start()
    assert (tmp_path / "ca-lab" / "issuing.pem").is_file()
    assert not (tmp_path / "ca").exists()


async def test_a_crashed_creation_leaves_nothing_that_blocks_the_next_start(
    tmp_path: Path,
) -> None:
    stale = tmp_path / ".ca.staging-crashed"
    stale.mkdir()
    (stale / "root.key.pem").write_text("half-written")
    ca = await _started(tmp_path)
    assert len(await ca.ca_chain()) == 2
    assert not stale.exists()


def _start_in_child(data_dir: str, barrier: Any, results: Any) -> None:
    async def run() -> str:
        ca = _ca(Path(data_dir))
        await ca.start()
        root = (await ca.ca_chain())[-1]
        await ca.close()
        return root.fingerprint(hashes.SHA256()).hex()

    barrier.wait()
    results.put(asyncio.run(run()))


def test_concurrent_first_starts_in_several_processes_create_one_ca(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    count = 4
    barrier = context.Barrier(count)
    results = context.Queue()
    workers = [
        context.Process(target=_start_in_child, args=(str(tmp_path), barrier, results))
        for _ in range(count)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0] * count
    fingerprints = {results.get(timeout=5) for _ in range(count)}
    assert len(fingerprints) == 1
    assert not list(tmp_path.glob(".ca.staging-*"))


# -- health ---------------------------------------------------------------------------------


async def test_check_passes_for_a_started_ca(tmp_path: Path) -> None:
    await (await _started(tmp_path)).check()


async def test_check_before_start_reports_the_ca_unavailable(tmp_path: Path) -> None:
    with pytest.raises(CAUnavailable):
        await _ca(tmp_path).check()


async def test_close_drops_the_key_so_the_ca_is_unavailable(tmp_path: Path) -> None:
    ca = await _started(tmp_path)
    await ca.close()
    with pytest.raises(CAUnavailable):
        await ca.check()
