# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)
"""The ACME front-end's account cache (``protocols.acme.account_cache.AccountCache``) on a
live gateway (SQLite; the repository's side, ``with_nonce(..., expect)``, is in
tests/contract/test_acme_store.py on every store).

A request signed by a cached account answers what the plain path (every request reads its
account) answers, and a cached account that another instance changed (written here straight to
the store, as another gateway would) is never trusted: the request is answered as the account
now stands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from protocols.acme import jws as J
from protocols.acme.base import ACME, Acme
from tests.acme_fixtures import client, make_client  # noqa: F401  (fixtures)
from tests.acme_helpers import Client, jwk_of


def _acme(client: Client) -> Acme:
    return client.http.app[ACME]


def _account_reads(acme: Acme) -> list[str]:
    """Records each account read the front-end makes before a signature check."""
    seen: list[str] = []
    read = acme.store.read

    async def spy(body: Any, *args: Any, **kw: Any) -> Any:
        if getattr(body, "__name__", "") == "get_account":
            seen.append(args[0])
        return await read(body, *args, **kw)

    acme.store.read = spy  # type: ignore[method-assign]
    return seen


async def _transcript(client: Client) -> list[Any]:
    """One issuance and the resources around it: each answer's status and ``status`` member."""
    out: list[Any] = []
    order, fin = await client.issue("cache-paths.example.com")
    out.append((fin.status, fin.json["status"]))
    for url in (client.kid, order["url"], *order["authorizations"]):
        r = await client.post(url)
        out.append((r.status, r.json["status"]))
    cert = await client.post(fin.json["certificate"])
    out.append((cert.status, cert.body.count(b"BEGIN CERTIFICATE")))
    again = await client.new_order("cache-paths-2.example.com")
    out.append((again.status, again.json["status"]))
    return out


async def test_the_cached_path_answers_as_the_plain_path(
    make_client: Callable[..., Any],
) -> None:
    transcripts, reads = [], []
    for enabled in (True, False):
        c: Client = await make_client()
        _acme(c).accounts.enabled = enabled
        assert (await c.register()).status == 201
        seen = _account_reads(_acme(c))
        transcripts.append(await _transcript(c))
        reads.append(len(seen))
    assert transcripts[0] == transcripts[1]
    assert transcripts[0][0] == (200, "valid")
    # cached: read once (the registration put nothing in the cache); plain: on every POST
    assert reads[0] == 1 and reads[1] >= 9


async def test_an_account_deactivated_elsewhere_is_refused(client: Client) -> None:
    acme = _acme(client)
    assert (await client.new_order("before.example.com")).status == 201  # cached now
    account_id = client.kid.rsplit("/", 1)[1]
    assert acme.accounts.get(account_id) is not None
    assert await acme.store.write(acme.repo.update_account, account_id, None, "deactivated")
    r = await client.new_order("after.example.com")
    assert (r.status, r.problem) == (401, "unauthorized"), r.body
    assert "deactivated" in r.json["detail"]
    assert len(await acme.store.read(acme.repo.orders_of, account_id)) == 1
    assert "Replay-Nonce" in r.headers


async def test_a_key_rolled_over_elsewhere_signs_and_the_old_key_no_longer_does(
    client: Client,
) -> None:
    acme = _acme(client)
    assert (await client.new_order("before.example.com")).status == 201  # cached now
    account_id = client.kid.rsplit("/", 1)[1]
    old, new = client.key, ec.generate_private_key(ec.SECP256R1())
    old_thumb, new_jwk = J.thumbprint(jwk_of(old)), jwk_of(new)
    assert (
        await acme.store.write(
            acme.repo.change_key, account_id, old_thumb, J.thumbprint(new_jwk), new_jwk
        )
        is None
    )
    with_old = await client.new_order("old-key.example.com")
    assert (with_old.status, with_old.problem) == (400, "malformed"), with_old.body
    assert with_old.json["detail"] == "JWS signature is invalid"
    client.key = new
    with_new = await client.new_order("new-key.example.com")
    assert with_new.status == 201, with_new.body
    client.key = old
    assert (await client.new_order("old-key-2.example.com")).status == 400
    assert len(await acme.store.read(acme.repo.orders_of, account_id)) == 2


async def test_an_account_updated_elsewhere_is_answered_as_it_now_stands(client: Client) -> None:
    acme = _acme(client)
    before = await client.post(client.kid)
    assert before.json["contact"] == ["mailto:ops@example.com"]
    account_id = client.kid.rsplit("/", 1)[1]
    await acme.store.write(acme.repo.update_account, account_id, ["mailto:new@example.com"], None)
    after = await client.post(client.kid)
    assert after.status == 200 and after.json["contact"] == ["mailto:new@example.com"]


async def test_a_reused_nonce_is_bad_nonce_with_a_cached_account(client: Client) -> None:
    nonce = await client.nonce()
    assert (await client.post(client.kid, nonce=nonce)).status == 200
    r = await client.post(client.kid, nonce=nonce)
    assert (r.status, r.problem) == (400, "badNonce")
    assert r.headers["Replay-Nonce"] != nonce
    assert (await client.post(client.kid, nonce=r.headers["Replay-Nonce"])).status == 200
