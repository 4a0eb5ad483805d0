"""SCEP start-up: configuration validation, the RA certificate's first issuance, persistence
and encryption at rest, and the NDES-style key-usage -> template map."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.pkix import cms
from gateway.server.app import components_of, create_app
from gateway.server.wiring import build
from protocols.scep import ra
from protocols.scep.messages import PKIStatus
from tests import scep_client as sc
from tests.scep_helpers import DEFAULT_ENDPOINTS, scep_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
Client = Callable[[Any], Awaitable[Any]]


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[scep.endpoints.a]\nchallenge = 'static'\n", "scep.endpoints.a.challenge_password"),
        ("[scep.endpoints.a]\nchallenge = 'magic'\n", "scep.endpoints.a.challenge"),
        (
            "[scep.endpoints.a]\nchallenge = 'none'\ntemplate = 'nope'\n",
            "scep.endpoints.a.template",
        ),
        ("[scep.endpoints.a]\nchallenge = 'none'\ncapabilities = ['MD5']\n", "capabilities"),
        ("[scep.endpoints.a]\nchallenge = 'none'\nrenewal = false\n", "capabilities"),
        ("[scep.endpoints.a]\nchallenge = 'webhook'\n", "scep.endpoints.a.webhook_url"),
        ("[scep.endpoints.a]\nchallenge = 'none'\ntypo = 1\n", "scep.endpoints.a.typo"),
        ("ndes_alias = 'b'\n[scep.endpoints.a]\nchallenge = 'none'\n", "scep.ndes_alias"),
        ("[scep.endpoints.a]\nchallenge = 'none'\nchallenge_password = 'inline'\n", "password"),
        ("", "scep.endpoints"),
    ],
)
async def test_invalid_scep_configuration_names_the_key(
    tmp_path: Path, toml: str, key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        await create_app(load_config(scep_config(tmp_path, toml)))
    assert key in str(err.value)


async def test_ra_certificate_is_issued_once_audited_and_reused_after_restart(
    tmp_path: Path,
) -> None:
    cfg = scep_config(tmp_path, DEFAULT_ENDPOINTS)
    app = await create_app(load_config(cfg))
    store = components_of(app).store
    events = [e.event for e in await store.audit_events(limit=100)]
    assert "scep.ra-certificate" in events
    first = (tmp_path / "data" / "scep" / "ra.crt").read_bytes()
    await components_of(app).close()
    app2 = await create_app(load_config(cfg))
    assert (tmp_path / "data" / "scep" / "ra.crt").read_bytes() == first
    events = [e.event for e in await components_of(app2).store.audit_events(limit=100)]
    assert events.count("scep.ra-certificate") == 1
    await components_of(app2).close()


async def test_ra_key_is_encrypted_at_rest_with_mode_0600(tmp_path: Path) -> None:
    app = await create_app(load_config(scep_config(tmp_path, DEFAULT_ENDPOINTS)))
    path = tmp_path / "data" / "scep" / "ra.key"
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(path.read_bytes(), None)
    await components_of(app).close()


async def test_wrong_ra_passphrase_refuses_to_start(tmp_path: Path) -> None:
    cfg = scep_config(tmp_path, DEFAULT_ENDPOINTS)
    await components_of(await create_app(load_config(cfg))).close()
    (tmp_path / "pw.txt").write_text("not-the-generated-one")
    text = cfg.read_text().replace("[scep]\n", '[scep]\nra_key_passphrase = "file:pw.txt"\n', 1)
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        await create_app(load_config(cfg))
    assert "scep.ra_key_passphrase" in str(err.value)


async def test_concurrent_first_starts_issue_one_ra_certificate(tmp_path: Path) -> None:
    config = load_config(scep_config(tmp_path, DEFAULT_ENDPOINTS))
    a, b = await build(config), await build(config)
    try:
        ra_a, ra_b = await asyncio.gather(
            *(
                ra.load_or_issue(
                    c.service,
                    c.store,
                    c.policy,
                    c.clock,
                    config.data_dir,
                    "scep-ra",
                    None,
                    config.file,
                )
                for c in (a, b)
            )
        )
        assert ra_a.certificate == ra_b.certificate
        issued = [r for r in await a.store.list_certificates() if r.template == "scep-ra"]
        assert len(issued) == 1
    finally:
        await a.close()
        await b.close()


async def test_key_usage_map_selects_the_template_like_ndes(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    toml = """
[scep.endpoints.ndes]
template = "scep-device"
challenge = "none"
[scep.endpoints.ndes.key_usage_templates]
signature = "scep-approval"
"""
    app = await create_app(load_config(scep_config(tmp_path, toml)))
    client = await aiohttp_client(app)
    body = await (await client.get("/scep/ndes?operation=GetCACert")).read()
    ra_cert = cms.read_certs_only(body)[0][0]
    signature_only = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    both = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
    results = {}
    for name, ku in (("sig", signature_only), ("both", both)):
        c = sc.Client(ra_cert)
        csr = sc.make_csr(c.key, f"ku-{name}", key_usage=ku)
        r = await client.post("/scep/ndes?operation=PKIOperation", data=c.pkcs_req(csr))
        results[name] = c.read(await r.read()).status
    # signature-only -> the approval template (PENDING); both -> the default (issued)
    assert results == {"sig": PKIStatus.PENDING, "both": PKIStatus.SUCCESS}
