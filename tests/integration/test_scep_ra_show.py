"""``certgate scep ra show`` (issue #12 item 10): every RA certificate the SCEP front-end
publishes, with its role, PEM, SHA-256 fingerprint and key usage, so an operator can pin it in
an MDM profile (Apple ``CAFingerprint``, micromdm ``-ca-fingerprint``) or a client's config.

The CLI runs in-process through ``main(argv)``; the RA certificates are bootstrapped by the
real app factory first, exactly as ``certgate serve`` does on its first start.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.cli.main import main
from gateway.config import load_config
from gateway.server.app import create_app
from gateway.server.wiring import build
from protocols.scep.http import SCEP
from protocols.scep.state import Scep
from tests.scep_helpers import scep_config

COMBINED = """
[scep.endpoints.devices]
template = "scep-device"
challenge = "none"
"""
WITH_PAIR = (
    COMBINED
    + """
[scep.endpoints.ndes]
template = "scep-device"
challenge = "none"
ra_mode = "ndes-pair"
"""
)


def _bootstrap(cfg: Path) -> Scep:
    """Start the app once (RA certificates issued, as on serve's first start) and return the
    SCEP front-end's state."""

    async def run() -> Scep:
        config = load_config(cfg)
        components = await build(config)
        try:
            app = await create_app(config, components)
            return app[SCEP]
        finally:
            await components.close()

    return asyncio.run(run())


def _show(cfg: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["scep", "ra", "show", "-c", str(cfg), *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def _fp(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_ra_show_prints_the_published_ra_certificate_with_fingerprint_and_key_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = scep_config(tmp_path, COMBINED)
    scep = _bootstrap(cfg)
    ra = scep.ra.certificate
    assert scep.published[0] == ra
    code, out, err = _show(cfg, capsys)
    assert code == 0, err
    assert f"SHA-256     {_fp(ra)}" in out
    assert ra.fingerprint(hashes.SHA256()).hex() in out  # the bare hex MDM profiles take
    assert "key usage   digitalSignature, keyEncipherment" in out
    assert "role        ra: signs CertReps and decrypts requests (devices)" in out
    assert _pem(ra) in out


def test_ra_show_lists_the_ndes_pair_with_roles_in_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = scep_config(tmp_path, WITH_PAIR)
    scep = _bootstrap(cfg)
    assert scep.ndes is not None
    code, out, err = _show(cfg, capsys, "--json")
    assert code == 0, err
    shown = {entry["role"]: entry for entry in json.loads(out)}
    expected = {
        "ra": scep.ra.certificate,
        "signature": scep.ndes.signing.certificate,
        "encryption": scep.ndes.encryption.certificate,
    }
    assert set(shown) == set(expected)
    for role, cert in expected.items():
        assert shown[role]["sha256"] == _fp(cert)
        assert shown[role]["pem"] == _pem(cert)
    assert shown["signature"]["key_usage"] == ["digitalSignature"]
    assert shown["encryption"]["key_usage"] == ["keyEncipherment"]
    assert shown["signature"]["endpoints"] == ["ndes"]
    assert shown["encryption"]["endpoints"] == ["ndes"]
    assert shown["ra"]["endpoints"] == ["devices"]


def test_ra_show_before_the_first_start_names_the_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = scep_config(tmp_path, COMBINED)

    async def create_gateway() -> None:  # the data directory and CA, no front-end started
        await (await build(load_config(cfg))).close()

    asyncio.run(create_gateway())
    code, out, err = _show(cfg, capsys)
    assert code == 1
    assert out == ""
    message = err.strip().splitlines()[-1]
    assert message.startswith("certgate: not-found: no SCEP RA certificate at ")
    assert str(tmp_path / "data" / "scep" / "ra.crt") in message
    assert "`certgate serve` issues it" in message
