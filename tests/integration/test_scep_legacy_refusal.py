"""A request refused for single DES or MD5 (RFC 8894 §2.9: MUST NOT by default; §7.5) says,
in the CertRep's failInfoText and in the gateway's log, which setting allows it: the operator
of an old Cisco IOS router or a micromdm scepclient sees what to change instead of a bare
badAlg (issue #12 item 10)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from gateway.config import load_config
from gateway.pkix import cms
from gateway.server.app import create_app
from protocols.scep.messages import FailInfo, PKIStatus
from tests import scep_client as sc
from tests.scep_helpers import DEFAULT_ENDPOINTS, STATIC_PASSWORD, scep_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SETTING = "scep.endpoints.devices.legacy_des = true"


@pytest.fixture
async def scep(
    tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[Any]]
) -> AsyncIterator[tuple[Any, x509.Certificate]]:
    app = await create_app(load_config(scep_config(tmp_path, DEFAULT_ENDPOINTS)))
    client = await aiohttp_client(app)
    r = await client.get("/scep/devices?operation=GetCACert")
    certs, _ = cms.read_certs_only(await r.read())
    yield client, certs[0]


async def _refused(scep: tuple[Any, x509.Certificate], **kw: Any) -> sc.CertRep:
    client, ra = scep
    c = sc.Client(ra)
    der = c.pkcs_req(sc.make_csr(c.key, challenge=STATIC_PASSWORD), **kw)
    r = await client.post("/scep/devices?operation=PKIOperation", data=der)
    assert r.status == 200
    rep = c.read(await r.read())
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_ALG)
    assert rep.certificates == ()
    return rep


async def test_single_des_refusal_names_the_setting_in_fail_info_text_and_log(
    scep: tuple[Any, x509.Certificate], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="certgate.scep")
    rep = await _refused(scep, cipher="des")
    assert rep.fail_text is not None
    assert "single DES" in rep.fail_text and SETTING in rep.fail_text
    logged = [r.getMessage() for r in caplog.records if r.name == "certgate.scep"]
    assert any("single DES" in m and SETTING in m for m in logged), logged


async def test_md5_refusal_names_the_setting_in_fail_info_text_and_log(
    scep: tuple[Any, x509.Certificate], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="certgate.scep")
    rep = await _refused(scep, digest="md5")
    assert rep.fail_text is not None
    assert "MD5" in rep.fail_text and SETTING in rep.fail_text
    logged = [r.getMessage() for r in caplog.records if r.name == "certgate.scep"]
    assert any("MD5" in m and SETTING in m for m in logged), logged
