"""End to end: random bytes and mutated valid pkiMessages never produce a 500 (or kill the
app); every 200 is a CertRep signed by the RA."""

from __future__ import annotations

import base64
import random
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.config import load_config
from gateway.pkix import cms
from gateway.server.app import create_app
from protocols.scep.messages import MessageType
from tests import scep_client as sc
from tests.scep_helpers import DEFAULT_ENDPOINTS, STATIC_PASSWORD, scep_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _mutations(valid: bytes, rng: random.Random, count: int) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(count):
        data = bytearray(valid)
        kind = rng.randrange(4)
        pos = rng.randrange(len(data))
        if kind == 0:
            data[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data = data[:pos]
        elif kind == 2:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        else:
            del data[pos : pos + rng.randrange(1, 16)]
        out.append(bytes(data))
    return out


async def test_random_and_mutated_messages_never_get_a_500(
    tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[Any]]
) -> None:
    app = await create_app(load_config(scep_config(tmp_path, DEFAULT_ENDPOINTS)))
    client = await aiohttp_client(app)
    certs, _ = cms.read_certs_only(
        await (await client.get("/scep/devices?operation=GetCACert")).read()
    )
    ra = certs[0]
    c = sc.Client(ra)
    csr = sc.make_csr(c.key, "fuzz", challenge=STATIC_PASSWORD)
    valid = [
        c.pkcs_req(csr, transaction_id="fz"),
        c.cert_poll(certs[1].subject, csr.subject, transaction_id="fz"),
        c.issuer_and_serial(MessageType.GET_CERT, certs[1].subject, 1),
    ]
    rng = random.Random(8894)
    bodies = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 600))) for _ in range(40)]
    for v in valid:
        bodies += _mutations(v, rng, 70)
    statuses: dict[int, int] = {}
    for i, body in enumerate(bodies):
        if i % 3 == 0:
            query = "message=" + urllib.parse.quote(base64.b64encode(body).decode(), safe="")
            r = await client.get(f"/scep/devices?operation=PKIOperation&{query}")
        else:
            r = await client.post("/scep/devices?operation=PKIOperation", data=body)
        statuses[r.status] = statuses.get(r.status, 0) + 1
        assert r.status in (200, 400), (i, r.status)
        if r.status == 200:
            signed = cms.parse_signed(await r.read())
            cms.verify_signed(signed)
            assert signed.signer == ra
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0
    assert (await client.get("/healthz")).status == 200


async def test_signer_certificate_with_an_invalid_x509_version_is_a_400_not_a_500(
    tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[Any]]
) -> None:
    # Found by fuzzing (issue #12 item 14): cryptography raises InvalidVersion, which is not a
    # ValueError, for a certificate whose version is not v1..v3 (RFC 5280 §4.1.2.1).
    app = await create_app(load_config(scep_config(tmp_path, DEFAULT_ENDPOINTS)))
    client = await aiohttp_client(app)
    certs, _ = cms.read_certs_only(
        await (await client.get("/scep/devices?operation=GetCACert")).read()
    )
    c = sc.Client(certs[0])
    valid = c.pkcs_req(sc.make_csr(c.key, "fuzz", challenge=STATIC_PASSWORD))
    assert c.signer is not None
    signer_der = c.signer.public_bytes(serialization.Encoding.DER)
    v3 = b"\xa0\x03\x02\x01\x02"  # tbsCertificate.version [0] EXPLICIT INTEGER 2 (v3)
    assert signer_der.count(v3) == 1 and valid.count(signer_der) == 1
    for bad_version in (b"\x03", b"\x05", b"\x7f"):
        bad = valid.replace(signer_der, signer_der.replace(v3, v3[:-1] + bad_version))
        for send in ("post", "get"):
            if send == "post":
                r = await client.post("/scep/devices?operation=PKIOperation", data=bad)
            else:
                query = "message=" + urllib.parse.quote(base64.b64encode(bad).decode(), safe="")
                r = await client.get(f"/scep/devices?operation=PKIOperation&{query}")
            assert r.status == 400, (bad_version, send, r.status)
            assert "certificate" in (await r.text())
    assert (await client.get("/healthz")).status == 200
