"""The EST listener's SSLContext (RFC 7030 §3.3, §4.4: TLS >= 1.2, no NULL ciphers)."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.errors import BadRequest
from protocols.est.settings import parse_settings
from protocols.est.tls import parse_forwarded_certificate, server_context, transport_facts
from protocols.est.tls_request import request_client_certificates
from tests.pki_helpers import self_signed, write_cert, write_key


def test_listener_context_is_tls12_plus_with_optional_client_certificates(tmp_path: Path) -> None:
    key, cert = self_signed("est.example")
    write_cert(tmp_path / "c.pem", cert)
    write_key(tmp_path / "k.pem", key)
    _, anchor = self_signed("anchor")
    ctx = server_context((anchor,))
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert not [c["name"] for c in ctx.get_ciphers() if "NULL" in c["name"].upper()]
    assert ctx.cert_store_stats()["x509"] == 1  # the anchor, and nothing from the OS store


class _Connection:
    """What transport_facts reads from a TLS connection (an ``ssl.SSLObject``'s methods)."""

    def __init__(self, peer_der: bytes | None) -> None:
        self.peer_der = peer_der

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        return self.peer_der

    def version(self) -> str:
        return "TLSv1.3"

    def get_channel_binding(self, kind: str) -> bytes | None:
        return None


def test_an_undecodable_client_certificate_is_a_problem_not_an_exception() -> None:
    """The handshake takes any certificate OpenSSL parses; cryptography may refuse it."""
    settings = parse_settings({}, "<t>", "device", {"device": 1, "tls-server": 1})
    facts = transport_facts(_Connection(b"\x30\x03\x02\x01\x00"), "192.0.2.1", None, settings)  # type: ignore[arg-type]
    assert facts.via == "tls" and facts.client_certificate is None
    assert (
        facts.client_certificate_problem and "cannot be decoded" in facts.client_certificate_problem
    )
    _, cert = self_signed("fine")
    good = transport_facts(_Connection(cert.public_bytes(Encoding.DER)), None, None, settings)  # type: ignore[arg-type]
    assert good.client_certificate == cert and good.client_certificate_problem is None


def test_listener_context_takes_over_client_certificate_verification(tmp_path: Path) -> None:
    """CPython with a dynamically linked OpenSSL (this test machine): the verify callback is
    installed, and the context still reads as CERT_OPTIONAL to Python."""
    key, cert = self_signed("est.example")
    write_cert(tmp_path / "c.pem", cert)
    write_key(tmp_path / "k.pem", key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    ctx.verify_mode = ssl.CERT_OPTIONAL
    assert request_client_certificates(ctx)
    assert ctx.verify_mode == ssl.CERT_OPTIONAL


def test_a_client_certificate_of_version_2_is_a_problem_not_an_exception() -> None:
    """OpenSSL accepts v2 certificates; cryptography raises InvalidVersion (no ValueError)."""
    settings = parse_settings({}, "<t>", "device", {"device": 1, "tls-server": 1})
    _, cert = self_signed("v2")
    v2 = cert.public_bytes(Encoding.DER).replace(
        b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x01", 1
    )
    facts = transport_facts(_Connection(v2), "192.0.2.1", None, settings)  # type: ignore[arg-type]
    assert facts.via == "tls" and facts.client_certificate is None
    assert (
        facts.client_certificate_problem and "cannot be decoded" in facts.client_certificate_problem
    )
    with pytest.raises(BadRequest, match="forwarded client certificate"):
        parse_forwarded_certificate(base64.b64encode(v2).decode())
