# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)
"""Inputs fuzzing found to give 500s, each now a protocol-correct ACME problem (RFC 8555
§6.7): a certificate with an invalid X.509 version in revokeCert, and deeply nested JSON as
the request body (the JWS), in its protected header, and in the signed payload."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from protocols.acme.messages import b64e
from tests.acme_fixtures import client, make_client  # noqa: F401
from tests.acme_helpers import Client, sign

DEEP = 5_000  # beyond the interpreter's recursion limit (1000), within the body size limit
MODERATE = 900  # parses, but must not reach code that walks it recursively


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _assert_problem(r: Any, kind: str = "malformed") -> None:
    assert 400 <= r.status < 500, (r.status, r.body[:300])
    assert r.problem == kind, r.body[:300]


async def test_revoke_a_certificate_with_an_invalid_x509_version_is_malformed(
    client: Client,
) -> None:
    _, fin = await client.issue("version.example.com")
    pem = (await client.post(fin.json["certificate"])).body
    der = x509.load_pem_x509_certificates(pem)[0].public_bytes(serialization.Encoding.DER)
    v3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2 (v3), RFC 5280 §4.1.2.1
    assert v3 in der
    bad = der.replace(v3, bytes.fromhex("a003020107"), 1)  # version 8: not X.509
    r = await client.post(client.directory["revokeCert"], {"certificate": b64e(bad)})
    _assert_problem(r)
    assert "certificate" in r.json["detail"]


@pytest.mark.parametrize("depth", [DEEP, MODERATE])
async def test_deeply_nested_json_body_is_malformed(client: Client, depth: int) -> None:
    for url in (client.directory["newAccount"], client.directory["newOrder"], client.kid or ""):
        r = await client.raw(url, _nested(depth).encode())
        _assert_problem(r)


@pytest.mark.parametrize("depth", [DEEP, MODERATE])
async def test_deeply_nested_json_members_of_the_jws_are_malformed(
    client: Client, depth: int
) -> None:
    url = client.directory["newOrder"]
    body = '{"protected": "e30", "payload": "", "signature": ' + _nested(depth) + "}"
    _assert_problem(await client.raw(url, body.encode()))


@pytest.mark.parametrize("depth", [DEEP, MODERATE])
async def test_deeply_nested_protected_header_is_malformed(client: Client, depth: int) -> None:
    url = client.directory["newOrder"]
    header = (
        '{"alg": "ES256", "nonce": "' + await client.nonce() + '", "url": "' + url + '", '
        '"kid": "' + (client.kid or "") + '", "x": ' + _nested(depth) + "}"
    )
    p64 = b64e(header.encode())
    sig = sign(client.key, f"{p64}.".encode(), "ES256")
    r = await client.raw(url, {"protected": p64, "payload": "", "signature": b64e(sig)})
    _assert_problem(r)


def _signed_raw_payload(c: Client, url: str, nonce: str, payload: str) -> dict[str, str]:
    header = {"alg": "ES256", "nonce": nonce, "url": url, "kid": c.kid}
    p64 = b64e(json.dumps(header).encode())
    body = b64e(payload.encode())
    return {
        "protected": p64,
        "payload": body,
        "signature": b64e(sign(c.key, f"{p64}.{body}".encode(), "ES256")),
    }


@pytest.mark.parametrize("depth", [DEEP, MODERATE])
@pytest.mark.parametrize(
    ("resource", "template"),
    [
        ("newOrder", '{{"identifiers": {}}}'),
        ("newOrder", "{}"),
        ("account", '{{"contact": {}}}'),
        ("keyChange", '{{"protected": {}, "payload": "", "signature": ""}}'),
        ("revokeCert", '{{"certificate": {}}}'),
    ],
)
async def test_deeply_nested_signed_payload_is_malformed(
    client: Client, depth: int, resource: str, template: str
) -> None:
    """A validly signed JWS whose payload nests deeply, at the top or inside a member."""
    url = client.kid if resource == "account" else client.directory[resource]
    assert url
    payload = template.format(_nested(depth)) if "{}" in template else _nested(depth)
    r = await client.raw(url, _signed_raw_payload(client, url, await client.nonce(), payload))
    _assert_problem(r)
    # the server still answers normally afterwards
    assert (await client.post(client.kid or "")).status == 200
