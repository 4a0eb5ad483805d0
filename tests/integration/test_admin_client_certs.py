"""TLS client certificates mapped to admin roles (issue #16 item 2, ``[admin] client_ca`` and
``[admin.client_roles]``) on a site from ``certgate init DIR`` served in-process over HTTPS: a
listed certificate acts with its role and is named ``cert:<subject>`` in the audit trail; an
unlisted one gets a 401 problem; one from another CA never completes the handshake; clients
without a certificate (tokens, every protocol) go on as before; the configuration's mistakes
are one-line errors."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from tests.admin_helpers import Site, is_problem, make_site
from tests.admin_helpers import serving as serve_site
from tests.pki_helpers import issue_leaf, make_ca


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    tmp = tmp_path_factory.mktemp("admin-certs")
    ca_file, ca_key, ca_cert = make_ca(tmp, "admin-clients")
    for name in ("ops-cert", "stranger"):
        issue_leaf(tmp, name, ca_key, ca_cert)
    _, other_key, other_cert = make_ca(tmp, "elsewhere")
    issue_leaf(tmp, "forged", other_key, other_cert)
    extra = (
        f'\n[admin]\nclient_ca = "{ca_file}"\n[admin.client_roles]\n"CN=ops-cert" = "approver"\n'
    )
    return make_site(tmp / "gw", extra)


def _context(site: Site, client: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(site.root))
    if client is not None:
        base = site.cfg.parents[2]  # <tmp>/gw/site/certgate.toml
        ctx.load_cert_chain(base / f"{client}.crt", base / f"{client}.key")
    return ctx


@pytest.fixture
async def serving(site: Site) -> AsyncIterator[str]:
    async with serve_site(site):
        yield f"https://localhost:{site.port}"


async def _call(
    url: str, ctx: ssl.SSLContext, method: str = "GET", **kw: object
) -> tuple[int, dict[str, str], object]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        async with session.request(method, url, **kw) as resp:  # type: ignore[arg-type]
            return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def test_a_listed_certificate_acts_with_its_role(site: Site, serving: str) -> None:
    ctx = _context(site, "ops-cert")
    status, _, me = await _call(f"{serving}/api/v1/whoami", ctx)
    assert status == 200
    assert me == {"name": "CN=ops-cert", "role": "approver", "expires_at": me["expires_at"],
                  "csrf": None}  # fmt: skip
    rid = site.pending[0]
    status, _, decided = await _call(f"{serving}/api/v1/requests/{rid}/approve", ctx, "POST")
    assert status == 200 and decided["outcome"]["status"] == "issued"  # type: ignore[index]
    status, _, _ = await _call(f"{serving}/api/v1/tokens", ctx)
    assert status == 403  # approver, not admin
    headers = {"Authorization": f"Bearer {site.tokens['viewer']}"}
    status, _, trail = await _call(f"{serving}/api/v1/audit?request_id={rid}", ctx, headers=headers)
    actors = {(e["event"], e["actor"]) for e in trail["items"]}  # type: ignore[index]
    assert ("request.approved", "cert:CN=ops-cert") in actors


async def test_a_token_wins_over_the_certificate(site: Site, serving: str) -> None:
    headers = {"Authorization": f"Bearer {site.tokens['admin']}"}
    ctx = _context(site, "ops-cert")
    status, _, me = await _call(f"{serving}/api/v1/whoami", ctx, headers=headers)
    assert status == 200 and me["name"] == "admin"  # type: ignore[index]


async def test_an_unlisted_certificate_gets_a_401_problem(site: Site, serving: str) -> None:
    status, headers, body = await _call(f"{serving}/api/v1/status", _context(site, "stranger"))
    is_problem(status, headers, body, 401)
    assert "CN=stranger" in body["detail"]  # type: ignore[index]


async def test_a_certificate_from_another_ca_fails_the_handshake(site: Site, serving: str) -> None:
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        await _call(f"{serving}/api/v1/status", _context(site, "forged"))


async def test_clients_without_a_certificate_go_on_as_before(site: Site, serving: str) -> None:
    ctx = _context(site, None)
    status, _, _ = await _call(f"{serving}/api/v1/status", ctx)
    assert status == 401
    headers = {"Authorization": f"Bearer {site.tokens['viewer']}"}
    status, _, _ = await _call(f"{serving}/api/v1/status", ctx, headers=headers)
    assert status == 200
    status, _, directory = await _call(f"{serving}/acme/directory", ctx)
    assert status == 200 and "newOrder" in directory  # type: ignore[operator]


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ('[admin.client_roles]\n"CN=x" = "viewer"\n', "admin.client_roles", "needs client_ca"),
        ('client_ca = "ca.pem"\n', "admin.client_ca", "no [admin.client_roles]"),
        ('client_ca = "missing.pem"\n[admin.client_roles]\n"CN=x" = "viewer"\n', "client_ca",
         "no such file"),
        ('client_ca = "ca.pem"\n[admin.client_roles]\n"CN=x" = "root"\n', "CN=x", "role must"),
        ('client_ca = "ca.pem"\n[admin.client_roles]\n"nonsense" = "viewer"\n', "nonsense",
         "RFC 4514"),
        ("enabled = 1\n", "admin.enabled", "expected"),
    ],
)  # fmt: skip
def test_configuration_mistakes_are_one_line(
    tmp_path: Path, table: str, key: str, message: str
) -> None:
    import tomllib

    (tmp_path / "ca.pem").write_text("")
    data = tomllib.loads("[admin]\n" + table)
    with pytest.raises(ConfigError) as caught:
        parse_config(data, str(tmp_path / "certgate.toml"), tmp_path)
    text = str(caught.value)
    assert key in text and message in text and "\n" not in text
