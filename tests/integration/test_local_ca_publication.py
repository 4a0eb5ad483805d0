"""AIA and CRL distribution points of the local CA (issue #13): on by default for the
gateway's own URLs, which the gateway answers with the right bytes; an explicit ``[]`` turns
them off. Everything in-process: the real app factory under aiohttp's test client."""

from __future__ import annotations

import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID

from gateway.config import load_config
from gateway.model import EnrollmentRequest, Issued, RevocationReason
from gateway.server.app import components_of, create_app
from gateway.service import local_requester
from tests.helpers import TEMPLATES, make_csr
from tests.pki_helpers import issue, self_signed, write_cert

SITE = "http://pki.example.test:8080"
Client = Callable[[Any], Awaitable[Any]]


def _config(tmp: Path, local: str = "", extra: str = "", *, external_url: str = SITE) -> Path:
    cfg = tmp / "certgate.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            [server]
            external_url = "{external_url}"
            access_log = false
            [data]
            dir = "{tmp / "data"}"
            [policy]
            templates_dir = "{TEMPLATES}"
            [poller]
            enabled = false
            [connectors.local]
            type = "local"
            """
        )
        + textwrap.dedent(local)
        + textwrap.dedent(extra)
    )
    return cfg


async def _app(cfg: Path, aiohttp_client: Client) -> tuple[Any, Any]:
    app = await create_app(load_config(cfg))
    return app, await aiohttp_client(app)


async def _issue(app: Any, name: str = "www.example.test") -> x509.Certificate:
    outcome = await components_of(app).service.enroll(
        EnrollmentRequest(
            csr=make_csr(cn=name, dns=(name,)),
            template="tls-server",
            requester=local_requester("alice"),
            transaction_id=f"publication-{name}",
        )
    )
    assert isinstance(outcome, Issued), outcome
    return outcome.certificate


def _ca_issuers(cert: x509.Certificate) -> list[str]:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [
        str(d.access_location.value)
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
    ]


def _crl_points(cert: x509.Certificate) -> list[str]:
    try:
        cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for point in cdp for name in point.full_name or ()]


async def _fetch(client: Any, url: str) -> tuple[str, bytes]:
    """GET ``url`` from the in-process gateway (it must be one of the site's own URLs)."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == SITE, url
    response = await client.get(parts.path)
    assert response.status == 200, url
    return response.headers["Content-Type"], await response.read()


async def test_default_aia_names_the_site_url_that_serves_the_issuing_ca_in_der(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    app, client = await _app(_config(tmp_path), aiohttp_client)
    leaf = await _issue(app)
    assert _ca_issuers(leaf) == [f"{SITE}/ca/issuing.crt"]
    content_type, body = await _fetch(client, _ca_issuers(leaf)[0])
    assert content_type == "application/pkix-cert"
    issuing = x509.load_der_x509_certificate(body)
    leaf.verify_directly_issued_by(issuing)


async def test_default_crl_point_names_the_site_url_that_serves_the_signed_crl_in_der(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    app, client = await _app(_config(tmp_path), aiohttp_client)
    leaf = await _issue(app)
    assert _crl_points(leaf) == [f"{SITE}/ca/crl"]
    await components_of(app).service.revoke(
        format(leaf.serial_number, "x"), RevocationReason.KEY_COMPROMISE, "cli:test"
    )
    content_type, body = await _fetch(client, _crl_points(leaf)[0])
    assert content_type == "application/pkix-crl"
    crl = x509.load_der_x509_crl(body)
    issuing = (await components_of(app).service.ca_chain())[0]
    key = issuing.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)  # the default key_algorithm
    assert crl.issuer == leaf.issuer and crl.is_signature_valid(key)
    assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None


async def test_a_new_issuing_ca_names_the_root_url_that_serves_the_root_as_pem(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    app, client = await _app(_config(tmp_path), aiohttp_client)
    issuing, root = await components_of(app).service.ca_chain()
    assert _ca_issuers(issuing) == [f"{SITE}/ca/root.pem"]
    content_type, body = await _fetch(client, _ca_issuers(issuing)[0])
    assert content_type == "application/x-pem-file"
    # What cepces (<= 0.3.17) FETCH-ROOTS does with it: response text -> PEM -> signature check.
    fetched = x509.load_pem_x509_certificate(body.decode("ascii").encode())
    assert fetched == root and fetched.subject == fetched.issuer
    issuing.verify_directly_issued_by(fetched)
    assert _ca_issuers(root) == []


async def test_explicit_empty_lists_remove_both_extensions_from_leaves_and_the_new_ca(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    cfg = _config(tmp_path, "crl_urls = []\naia_urls = []\n")
    app, _ = await _app(cfg, aiohttp_client)
    leaf = await _issue(app)
    assert _ca_issuers(leaf) == [] and _crl_points(leaf) == []
    issuing = (await components_of(app).service.ca_chain())[0]
    assert _ca_issuers(issuing) == []


async def test_an_existing_ca_keeps_its_certificate_and_its_leaves_get_the_defaults(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    first, _ = await _app(_config(tmp_path, "aia_urls = []\n"), aiohttp_client)
    before = (await components_of(first).service.ca_chain())[0]
    await first.shutdown()
    await first.cleanup()
    app, _ = await _app(_config(tmp_path), aiohttp_client)
    issuing = (await components_of(app).service.ca_chain())[0]
    assert issuing == before and _ca_issuers(issuing) == []
    assert _ca_issuers(await _issue(app)) == [f"{SITE}/ca/issuing.crt"]


async def test_configured_urls_replace_the_defaults(tmp_path: Path, aiohttp_client: Client) -> None:
    urls = 'crl_urls = ["http://crl.example/a.crl"]\naia_urls = ["http://aia.example/a.crt"]\n'
    app, _ = await _app(_config(tmp_path, urls), aiohttp_client)
    leaf = await _issue(app)
    assert _crl_points(leaf) == ["http://crl.example/a.crl"]
    assert _ca_issuers(leaf) == ["http://aia.example/a.crt"]
    # The issuing CA's root URL is the gateway's only with the default AIA.
    assert _ca_issuers((await components_of(app).service.ca_chain())[0]) == []


async def test_only_the_default_connector_gets_the_site_urls(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    # /ca/* serves the default connector's CA (the default template's connector, here
    # acme-tls's "local"): another local CA's certificates must not point there (they would
    # name another CA's certificate and CRL).
    templates = tmp_path / "templates"
    templates.mkdir()
    for path in TEMPLATES.glob("*.toml"):
        (templates / path.name).write_text(path.read_text())
    text = (TEMPLATES / "tls-server.toml").read_text()
    (templates / "tls-server.toml").write_text(
        text.replace('connector = "local"', 'connector = "second"')
    )
    cfg = _config(tmp_path, extra='[connectors.second]\ntype = "local"\n')
    text = cfg.read_text().replace(str(TEMPLATES), str(templates))
    cfg.write_text(text.replace("[policy]\n", '[policy]\ndefault_template = "acme-tls"\n'))
    app, _ = await _app(cfg, aiohttp_client)
    leaf = await _issue(app)
    second = await components_of(app).connectors["second"].ca_chain()
    assert leaf.issuer == second[0].subject
    assert _ca_issuers(leaf) == [] and _crl_points(leaf) == []
    assert _ca_issuers(second[0]) == []
    published = (await components_of(app).service.ca_chain())[0]
    assert _ca_issuers(published) == [f"{SITE}/ca/root.pem"]


async def test_with_tls_on_the_main_listener_the_urls_name_the_plain_listener(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    # The site `certgate init` writes: HTTPS main listener, plain HTTP beside it for /ca/.
    cfg = _config(
        tmp_path,
        extra=f"""
        [server.tls]
        names = ["localhost"]
        [server.plain]
        port = 8080
        external_url = "{SITE}"
        """,
        external_url="https://gw.example.test:8443",
    )
    app, client = await _app(cfg, aiohttp_client)
    leaf = await _issue(app)
    issuing = (await components_of(app).service.ca_chain())[0]
    assert _ca_issuers(leaf) == [f"{SITE}/ca/issuing.crt"]
    assert _crl_points(leaf) == [f"{SITE}/ca/crl"]
    assert _ca_issuers(issuing) == [f"{SITE}/ca/root.pem"]
    # The test client speaks plain HTTP: what the device listener serves, it serves here.
    assert (await _fetch(client, _ca_issuers(leaf)[0]))[0] == "application/pkix-cert"
    assert (await _fetch(client, _crl_points(leaf)[0]))[0] == "application/pkix-crl"
    assert (await _fetch(client, _ca_issuers(issuing)[0]))[0] == "application/x-pem-file"


async def test_root_url_is_not_found_when_the_published_chain_ends_below_its_root(
    tmp_path: Path, aiohttp_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default connector (the default template tls-server's) is AD CS (CES), configured
    # with only its issuing CA: no root to serve.
    root_key, root = self_signed("AD Root", ca=True)
    _, issuing = issue(root_key, root, "AD Issuing CA", ca=True)
    chain = write_cert(tmp_path / "adcs-chain.pem", issuing)
    monkeypatch.setenv("PUBLICATION_CES_PW", "pw")
    cfg = tmp_path / "certgate.toml"
    _config(tmp_path)  # the data dir and the rest, with [connectors.local] last
    text = cfg.read_text().replace(
        "[connectors.local]",
        textwrap.dedent(
            f"""
            [connectors.adcs]
            type = "ms_ces"
            url = "https://ces.invalid/CES"
            username = "svc"
            password = "env:PUBLICATION_CES_PW"
            issuer_chain = "{chain}"
            [connectors.local]"""
        ),
    )
    templates = tmp_path / "templates"
    templates.mkdir()
    for path in TEMPLATES.glob("*.toml"):
        (templates / path.name).write_text(path.read_text())
    server = (TEMPLATES / "tls-server.toml").read_text()
    (templates / "tls-server.toml").write_text(
        server.replace('connector = "local"', 'connector = "adcs"')
    )
    cfg.write_text(text.replace(str(TEMPLATES), str(templates)))
    app, client = await _app(cfg, aiohttp_client)
    assert (await components_of(app).service.ca_chain()) == (issuing,)
    response = await client.get("/ca/root.pem")
    assert response.status == 404
    assert "root" in await response.text()
    # The local CA, not the default, gets no site URLs and its issuing CA names no root URL.
    assert _ca_issuers((await components_of(app).connectors["local"].ca_chain())[0]) == []
