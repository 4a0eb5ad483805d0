"""The SCEP RA key file is encrypted like the CA keys (gateway.pkix.keyfile: scrypt with a
modern work factor) and a legacy PBKDF2-2,048 file is re-encrypted on the next start (issue
#12 item 16), through the real app factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.config import load_config
from gateway.server.app import create_app
from tests.scep_helpers import DEFAULT_ENDPOINTS, scep_config
from tests.unit.test_key_kdf import OWASP_MIN_P, SCRYPT, kdf_of

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _chosen_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTGATE_CA_PASSPHRASE", "correct horse battery staple")


async def test_scep_ra_key_uses_the_same_kdf_and_legacy_files_are_re_encrypted(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    """The RA key had its own BestAvailableEncryption call; it now goes through
    gateway.pkix.keyfile like the CA keys."""
    cfg = scep_config(tmp_path, DEFAULT_ENDPOINTS)
    await aiohttp_client(await create_app(load_config(cfg)))
    ra_key = tmp_path / "data" / "scep" / "ra.key"
    oid, params = kdf_of(ra_key)
    assert oid == SCRYPT and params["3"] >= OWASP_MIN_P[params["1"]]
    passphrase = b"correct horse battery staple"
    key = serialization.load_pem_private_key(ra_key.read_bytes(), passphrase)
    ra_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
    )
    await aiohttp_client(await create_app(load_config(cfg)))
    assert kdf_of(ra_key)[0] == SCRYPT
    again = serialization.load_pem_private_key(ra_key.read_bytes(), passphrase)
    assert again.private_numbers() == key.private_numbers()  # type: ignore[union-attr]
