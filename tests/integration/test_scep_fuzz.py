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
