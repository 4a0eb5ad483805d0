"""The EST listener's SSLContext (RFC 7030 §3.3, §4.4: TLS >= 1.2, no NULL ciphers)."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from protocols.est.tls import server_context
from tests.unit.test_est_render import self_signed


def test_listener_context_is_tls12_plus_with_optional_client_certificates(tmp_path: Path) -> None:
    key, cert = self_signed("est.example")
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    _, anchor = self_signed("anchor")
    ctx = server_context(tmp_path / "c.pem", tmp_path / "k.pem", (anchor,))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert not [c["name"] for c in ctx.get_ciphers() if "NULL" in c["name"].upper()]
    assert ctx.cert_store_stats()["x509"] == 1  # the anchor, and nothing from the OS store
