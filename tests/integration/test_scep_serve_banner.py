"""``certgate serve`` prints the SCEP RA certificate's SHA-256 fingerprint in its start-up
banner (issue #12 item 10), in one process and with ``--workers``, so the value an operator
pins in client configurations is on screen at the first start. A subprocess: this is about
what the serve process prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from protocols.scep.ra_info import sha256
from tests.helpers import free_port
from tests.scep_helpers import scep_config, serving

ENDPOINTS = """
[scep.endpoints.devices]
template = "scep-device"
challenge = "none"

[scep.endpoints.ndes]
template = "scep-device"
challenge = "none"
ra_mode = "ndes-pair"
"""


def _banner_lines(cfg: Path, port: int) -> list[str]:
    log = (cfg.parent / f"serve-{port}.log").read_text()
    return [line.strip() for line in log.splitlines() if line.startswith("  SCEP RA ")]


def _cert(cfg: Path, stem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(
        (cfg.parent / "data" / "scep" / f"{stem}.crt").read_bytes()
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_banner_shows_every_scep_ra_fingerprint(tmp_path: Path, workers: int) -> None:
    cfg = scep_config(tmp_path, ENDPOINTS)
    port = free_port()
    with serving(cfg, "--workers", str(workers), port=port):
        pass
    shown = _banner_lines(cfg, port)
    assert shown == [
        f"SCEP RA SHA-256 {sha256(_cert(cfg, 'ra'))} (ra)",
        f"SCEP RA SHA-256 {sha256(_cert(cfg, 'ra-signature'))} (signature)",
        f"SCEP RA SHA-256 {sha256(_cert(cfg, 'ra-encryption'))} (encryption)",
    ]
