# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)
"""Certificate download formats by Accept (RFC 8555 §7.4.2): the PEM chain by default,
certs-only PKCS#7 (read back by ``openssl pkcs7``), the DER leaf with rel="up", 406 only
when nothing acceptable is offered."""

from __future__ import annotations

import subprocess

import pytest
from cryptography import x509

from tests.acme_fixtures import client, make_client  # noqa: F401
from tests.acme_helpers import Client, Reply
from tests.helpers import require_tool

PEM = "application/pem-certificate-chain"


async def _issued(c: Client) -> str:
    _, fin = await c.issue("formats.example.com")
    assert fin.status == 200 and fin.json["status"] == "valid", fin.body
    return str(fin.json["certificate"])


def _openssl_pkcs7_certs(openssl: str, der: bytes) -> list[x509.Certificate]:
    """The certificates ``openssl pkcs7 -print_certs`` reads from a DER PKCS#7 body."""
    out = subprocess.run(
        [openssl, "pkcs7", "-inform", "DER", "-print_certs"],
        input=der,
        capture_output=True,
        check=True,
    ).stdout
    return x509.load_pem_x509_certificates(out)


def _pem_chain(r: Reply) -> list[x509.Certificate]:
    assert r.status == 200 and r.headers["Content-Type"].startswith(PEM), (r.status, r.body)
    return x509.load_pem_x509_certificates(r.body)


@pytest.mark.parametrize(
    "accept",
    [
        "",  # no Accept header at all
        "*/*",
        PEM,
        "application/*",
        "text/html, */*;q=0.1",
        "application/pkcs7-mime;q=0.5, application/pem-certificate-chain",
        "application/pkix-cert;q=0, */*",
    ],
)
async def test_pem_chain_is_the_default(client: Client, accept: str) -> None:
    url = await _issued(client)
    chain = _pem_chain(await client.post(url, accept=accept))
    assert len(chain) >= 2 and chain[0].subject != chain[1].subject


@pytest.mark.interop
async def test_pkcs7_is_the_chain_as_certs_only_der(client: Client) -> None:
    openssl = require_tool("openssl")
    url = await _issued(client)
    pem = _pem_chain(await client.post(url))
    r = await client.post(url, accept="application/pkcs7-mime")
    assert r.status == 200 and r.headers["Content-Type"] == "application/pkcs7-mime", r.body
    assert r.body[:1] == b"\x30"  # DER, not PEM or base64
    assert "Replay-Nonce" in r.headers and "Accept" in r.headers.get("Vary", "")
    # the one certs-only builder (gateway.pkix.certsonly): the chain, in chain order
    certs = _openssl_pkcs7_certs(openssl, r.body)
    assert certs == pem
    links = r.headers.getall("Link")
    assert any('rel="alternate"' in link for link in links)  # the other chain, as for PEM


@pytest.mark.interop
async def test_pkcs7_of_the_alternate_chain_carries_the_root(client: Client) -> None:
    openssl = require_tool("openssl")
    url = await _issued(client)
    alternate = _pem_chain(await client.post(url + "/1"))
    r = await client.post(url + "/1", accept="application/pkcs7-mime")
    certs = _openssl_pkcs7_certs(openssl, r.body)
    assert len(certs) == len(alternate) and set(certs) == set(alternate)
    assert any(c.subject == c.issuer for c in certs)  # the root, as in the PEM alternate


async def test_pkix_cert_is_the_der_leaf_with_its_issuer_up(client: Client) -> None:
    url = await _issued(client)
    leaf = _pem_chain(await client.post(url))[0]
    r = await client.post(url, accept="application/pkix-cert, */*;q=0.8")
    assert r.status == 200 and r.headers["Content-Type"] == "application/pkix-cert"
    assert x509.load_der_x509_certificate(r.body) == leaf
    up = [link for link in r.headers.getall("Link") if 'rel="up"' in link]
    assert up and "/ca/issuing.crt" in up[0]
    issuer = await client.http.get(up[0].split(">")[0].split(client.base)[1].lstrip("<"))
    assert x509.load_der_x509_certificate(await issuer.read()).subject == leaf.issuer


@pytest.mark.parametrize(
    "accept", ["text/html", "application/json, text/*", "application/pkix-cert;q=0"]
)
async def test_nothing_acceptable_is_406_with_a_problem(client: Client, accept: str) -> None:
    url = await _issued(client)
    r = await client.post(url, accept=accept)
    assert r.status == 406 and r.problem == "malformed", r.body
    assert "application/pkcs7-mime" in r.json["detail"]
    assert "Replay-Nonce" in r.headers
