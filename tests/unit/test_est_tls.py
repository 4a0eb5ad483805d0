"""The EST listener's SSLContext (RFC 7030 §3.3, §4.4: TLS >= 1.2, no NULL ciphers)."""

from __future__ import annotations

import ssl
from pathlib import Path

from protocols.est.tls import server_context
from tests.pki_helpers import self_signed, write_cert, write_key


def test_listener_context_is_tls12_plus_with_optional_client_certificates(tmp_path: Path) -> None:
    key, cert = self_signed("est.example")
    write_cert(tmp_path / "c.pem", cert)
    write_key(tmp_path / "k.pem", key)
    _, anchor = self_signed("anchor")
    ctx = server_context(tmp_path / "c.pem", tmp_path / "k.pem", (anchor,))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert not [c["name"] for c in ctx.get_ciphers() if "NULL" in c["name"].upper()]
    assert ctx.cert_store_stats()["x509"] == 1  # the anchor, and nothing from the OS store
