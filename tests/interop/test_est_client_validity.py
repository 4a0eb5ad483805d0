"""EST /simplereenroll (RFC 7030 §4.2.2) with a client certificate of this CA that is outside
its validity period, against a real ``certgate serve`` with curl as the client.

Most certificates here are signed with the gateway's own issuing CA key, read from its data
directory through the local CA's key store; one is issued by the gateway itself from a
three-second template and left to expire. The listener verifies the chain during the TLS
handshake but not the time (``protocols.est.tls``), so curl completes the handshake and the
handler refuses with 403 and a text reason naming the rule and the problem; nothing reaches the
CA and nothing is recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.est_helpers import Gateway, curl, openssl_req, serving, write_est_config
from tests.helpers import TEMPLATES, certgate, free_port, require_tool
from tests.pki_helpers import builder, ec_key, gateway_ca, valid, write_cert, write_key

pytestmark = pytest.mark.interop

PKCS10 = ("-H", "Content-Type: application/pkcs10")

#: The device template, but certificates live three seconds.
SHORT_LIVED_TEMPLATE = (
    (TEMPLATES / "device.toml")
    .read_text()
    .replace('name = "device"', 'name = "est-short-lived"')
    .replace(
        'oid = "2.25.229140248001717415336070208339824134280"',
        'oid = "2.25.301118553349062419218326353733546129301"',
    )
    .replace('validity = "365d"', 'validity = "3s"')
    .replace('renewal_period = "6w"', 'renewal_period = "1s"')
)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    require_tool("curl")
    require_tool("openssl")
    tmp = tmp_path_factory.mktemp("est-validity")
    port = free_port()
    cfg = write_est_config(tmp, est_port=port)
    (tmp / "templates" / "est-short-lived.toml").write_text(SHORT_LIVED_TEMPLATE)
    with serving(cfg, port) as gateway:
        yield gateway


def _listed(gw: Gateway, *command: str) -> list[Any]:
    proc = certgate(*command, "--json", "-c", str(gw.cfg), check=True)
    records: list[Any] = json.loads(proc.stdout)
    return records


def _signed_by_the_gateway(
    gw: Gateway, name: str, validity: dict[str, Any]
) -> tuple[x509.Certificate, Path, Path]:
    """A certificate for ``CN=<name>`` signed with the gateway's issuing CA key (but never
    issued by the gateway, so not in its inventory), written for curl's --cert/--key."""
    signer, ca_cert = gateway_ca(gw.tmp / "data")
    try:
        key = ec_key()
        cert = signer.sign_certificate(
            builder(name, key.public_key(), issuer=ca_cert.subject, **validity)
        )
    finally:
        signer.close()
    cert_path = write_cert(gw.tmp / f"{name}.crt", cert)
    return cert, cert_path, write_key(gw.tmp / f"{name}.key", key)


def _reenroll(
    gw: Gateway, name: str, validity: dict[str, Any], *curl_args: str
) -> tuple[x509.Certificate, Any]:
    cert, cert_path, key_path = _signed_by_the_gateway(gw, name, validity)
    csr = openssl_req(gw.tmp, f"{name}-renewal", f"/CN={name}", key=key_path)
    reply = curl(gw, "/simplereenroll", "--cert", str(cert_path), "--key", str(key_path), *PKCS10,
                 *curl_args, data=csr)  # fmt: skip
    return cert, reply


# TLS 1.2 sends the client certificate inside the handshake, TLS 1.3 after it: neither refuses it.
@pytest.mark.parametrize("tls", [("--tls-max", "1.2"), ("--tlsv1.3",)], ids=["tls12", "tls13"])
def test_reenroll_with_an_expired_certificate_of_this_ca_is_403_and_issues_nothing(
    gw: Gateway, tls: tuple[str, ...]
) -> None:
    certificates, requests = _listed(gw, "certs", "list"), _listed(gw, "requests", "list")
    cert, reply = _reenroll(gw, f"expired-{tls[-1].strip('-')}", valid(-30, -1), *tls)
    assert reply.status == 403
    assert (reply.header("content-type") or "").startswith("text/plain")
    expired_at = cert.not_valid_after_utc.isoformat()
    assert reply.body == (
        f"est-client-certificate: the client certificate expired at {expired_at}\n".encode()
    )
    assert len(_listed(gw, "certs", "list")) == len(certificates)
    assert len(_listed(gw, "requests", "list")) == len(requests)


def test_reenroll_with_a_not_yet_valid_certificate_of_this_ca_is_403_and_issues_nothing(
    gw: Gateway,
) -> None:
    certificates, requests = _listed(gw, "certs", "list"), _listed(gw, "requests", "list")
    _, reply = _reenroll(gw, "future-dev", valid(1, 30))
    assert reply.status == 403
    assert reply.body == b"est-client-certificate: the client certificate is not yet valid\n"
    assert len(_listed(gw, "certs", "list")) == len(certificates)
    assert len(_listed(gw, "requests", "list")) == len(requests)


def test_reenroll_with_a_current_certificate_signed_the_same_way_reaches_the_inventory_check(
    gw: Gateway,
) -> None:
    # The control: the same construction inside its validity passes the time check and is
    # refused only because the gateway never issued it, so the two refusals above are the
    # time check's.
    _, reply = _reenroll(gw, "unknown-dev", valid(-1, 30))
    assert reply.status == 403
    assert reply.body == (
        b"est-client-certificate: the client certificate is not in this CA's inventory\n"
    )


def test_reenroll_with_an_expired_certificate_the_gateway_issued_is_403_and_issues_nothing(
    gw: Gateway,
) -> None:
    # The whole life of a device certificate: issued (in the inventory, not revoked), expired.
    openssl_req(gw.tmp, "short-dev", "/CN=short-dev")  # short-dev.key and .csr.pem
    cert_path = gw.tmp / "short-dev.crt"
    certgate("enroll", "-t", "est-short-lived", "--csr", str(gw.tmp / "short-dev.csr.pem"),
             "-o", str(cert_path), "-c", str(gw.cfg), check=True)  # fmt: skip
    cert = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    time.sleep(max(0.0, (cert.not_valid_after_utc - datetime.now(UTC)).total_seconds() + 1.5))
    certificates, requests = _listed(gw, "certs", "list"), _listed(gw, "requests", "list")
    key_path = gw.tmp / "short-dev.key"
    renewal = openssl_req(gw.tmp, "short-dev-2", "/CN=short-dev", key=key_path)
    reply = curl(gw, "/simplereenroll", "--cert", str(cert_path), "--key", str(key_path), *PKCS10,
                 data=renewal)  # fmt: skip
    assert reply.status == 403
    expired_at = cert.not_valid_after_utc.isoformat()
    assert reply.body == (
        f"est-client-certificate: the client certificate expired at {expired_at}\n".encode()
    )
    assert len(_listed(gw, "certs", "list")) == len(certificates)
    assert len(_listed(gw, "requests", "list")) == len(requests)
