# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)
"""Terms of service (RFC 8555 §7.3, §7.3.3): agreement on newAccount, and userActionRequired
for accounts that agreed to older terms until they agree again, driven by a raw JWS client.
Changed terms are a restart with a new URL: a second gateway on the same database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.acme_fixtures import make_client  # noqa: F401
from tests.acme_helpers import Client, Reply

V1 = "https://tos.example/2026-01"
V2 = "https://tos.example/2026-07"


def _terms(url: str, extra: str = "") -> str:
    return f'terms_of_service = "{url}"\n{extra}'


def _assert_user_action(r: Reply, terms: str) -> str:
    assert r.status == 403 and r.problem == "userActionRequired", r.body
    links = r.headers.getall("Link")
    assert f'<{terms}>;rel="terms-of-service"' in links
    assert any('rel="index"' in link for link in links)
    assert "Replay-Nonce" in r.headers
    instance: str = r.json["instance"]
    assert instance.startswith("https://acme.test/")
    return instance


async def _register(c: Client, **payload: Any) -> Reply:
    """newAccount with exactly ``payload`` (Client.register adds the agreement)."""
    r = await c.post(c.directory["newAccount"], payload, use_jwk=True)
    if r.status in (200, 201):
        c.kid = r.headers["Location"]
    return r


async def _again(c: Client, gateway: Client) -> Client:
    """The same account key and URL, talking to another gateway."""
    moved = Client(gateway.http, key=c.key, kid=c.kid)
    await moved.get_directory()
    return moved


async def test_new_account_must_agree_when_the_directory_shows_terms(
    make_client: Callable[..., Any],
) -> None:
    c: Client = await make_client(_terms(V1))
    assert c.directory["meta"]["termsOfService"] == V1
    for payload in ({}, {"termsOfServiceAgreed": False}, {"termsOfServiceAgreed": "true"}):
        _assert_user_action(await _register(c, **payload), V1)
    assert c.kid is None  # nothing was created
    r = await _register(c, termsOfServiceAgreed=True)
    assert r.status == 201 and r.json["termsOfServiceAgreed"] is True, r.body
    assert (await c.new_order("agreed.example.com")).status == 201


async def test_agreement_is_optional_when_configured_so(make_client: Callable[..., Any]) -> None:
    c: Client = await make_client(_terms(V1, "require_terms_agreement = false\n"))
    assert c.directory["meta"]["termsOfService"] == V1
    r = await _register(c)
    assert r.status == 201 and "termsOfServiceAgreed" not in r.json
    assert (await c.new_order("optional.example.com")).status == 201


async def test_changed_terms_require_agreement_again(make_client: Callable[..., Any]) -> None:
    old = await make_client(_terms(V1))
    c = Client(old.http)
    await c.get_directory()
    assert (await c.register()).status == 201
    order = await c.new_order("before.example.com")
    assert order.status == 201

    new = await make_client(_terms(V2))  # the operator published new terms: new URL
    c2 = await _again(c, new)
    assert c2.directory["meta"]["termsOfService"] == V2
    instance = _assert_user_action(await c2.new_order("after.example.com"), V2)
    _assert_user_action(await c2.post(order.headers["Location"]), V2)  # any other resource
    page = await new.http.get(c2.path(instance))
    assert page.status == 200 and V2 in await page.text()
    # The account resource stays open: read it, and the key still finds its account.
    me = await c2.post(c2.kid or "")
    assert me.status == 200 and "termsOfServiceAgreed" not in me.json
    found = await c2.post(c2.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    assert found.status == 200 and found.headers["Location"] == c2.kid
    # Agreeing again lifts the block.
    r = await c2.post(c2.kid or "", {"termsOfServiceAgreed": True})
    assert r.status == 200 and r.json["termsOfServiceAgreed"] is True, r.body
    assert (await c2.new_order("after.example.com")).status == 201
    # The old terms' gateway now sees an account that agreed to other terms.
    _assert_user_action(await c.new_order("old.example.com"), V1)


async def test_accounts_from_before_any_terms_must_agree(make_client: Callable[..., Any]) -> None:
    none = await make_client()
    c = Client(none.http)
    await c.get_directory()
    assert (await _register(c)).status == 201
    termed = await make_client(_terms(V1))
    c2 = await _again(c, termed)
    _assert_user_action(await c2.new_order("x.example.com"), V1)
    # {"termsOfServiceAgreed": false} or other fields do not agree
    r = await c2.post(c2.kid or "", {"termsOfServiceAgreed": False, "contact": []})
    assert r.status == 200 and "termsOfServiceAgreed" not in r.json
    _assert_user_action(await c2.new_order("x.example.com"), V1)


async def test_the_terms_page_is_404_without_terms(make_client: Callable[..., Any]) -> None:
    c: Client = await make_client()
    r = await c.http.get("/acme/terms")
    assert r.status == 404
    assert r.headers["Content-Type"].startswith("application/problem+json")
