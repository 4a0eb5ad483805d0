"""The in-process SCEP gateway of the PKIOperation tests (test_scep_pkioperation*.py): the
``scep`` fixture (the real app factory on the default endpoints, its RA and issuing CA learnt
from GetCACert) and CSRs for a scripted client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from gateway.config import load_config
from gateway.pkix import cms
from gateway.server.app import create_app
from tests import scep_client as sc
from tests.scep_helpers import DEFAULT_ENDPOINTS, STATIC_PASSWORD, scep_config


@dataclass
class Scep:
    client: Any  # aiohttp TestClient
    ra: x509.Certificate
    ca: x509.Certificate
    app: Any

    async def post(self, der: bytes, endpoint: str = "devices") -> tuple[int, bytes, str]:
        r = await self.client.post(
            f"/scep/{endpoint}/pkiclient.exe?operation=PKIOperation",
            data=der,
            headers={"Content-Type": "application/x-pki-message"},
        )
        return r.status, await r.read(), r.headers.get("Content-Type", "")

    async def rep(self, c: sc.Client, der: bytes, endpoint: str = "devices") -> sc.CertRep:
        status, body, ctype = await self.post(der, endpoint)
        assert status == 200, body
        assert ctype == "application/x-pki-message"
        rep = c.read(body)
        assert rep.signer == self.ra
        return rep


@pytest.fixture
async def scep(
    tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[Any]]
) -> AsyncIterator[Scep]:
    cfg = scep_config(tmp_path, DEFAULT_ENDPOINTS)
    app = await create_app(load_config(cfg))
    client = await aiohttp_client(app)
    r = await client.get("/scep/devices?operation=GetCACert")
    assert r.status == 200
    certs, _ = cms.read_certs_only(await r.read())
    ra = next(c for c in certs if not _is_ca(c))
    issuing = next(c for c in certs if c.subject == ra.issuer)
    yield Scep(client, ra, issuing, app)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def csr_for(c: sc.Client, cn: str = "device-1", **kw: Any) -> x509.CertificateSigningRequest:
    return sc.make_csr(c.key, cn, challenge=kw.pop("challenge", STATIC_PASSWORD), **kw)
