# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)
"""RFC 8555 transport, JWS and account rules through the real app: nonces, media types, JWS
tampering, accounts, external account binding, key rollover (all nine checks), rate limits."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.server.app import components_of
from protocols.acme.base import ACME
from protocols.acme.eab import new_hmac_key, seal
from protocols.acme.messages import b64e
from tests.acme_fixtures import client, make_client, other  # noqa: F401
from tests.acme_helpers import Client, eab_jws, jwk_of, jws


async def test_directory_urls_are_absolute_from_configuration(client: Client) -> None:
    r = await client.http.get("/acme/directory", headers={"Host": "evil.example"})
    body = await r.json()
    for key in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange", "renewalInfo"):
        assert body[key].startswith("https://acme.test/acme/"), key
    text = await r.text()
    assert '\n  "keyChange": "' in text  # Boulder-style formatting


async def test_new_nonce_head_200_get_204_no_store(client: Client) -> None:
    head = await client.http.head("/acme/new-nonce")
    get = await client.http.get("/acme/new-nonce")
    assert head.status == 200 and get.status == 204
    for r in (head, get):
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["Replay-Nonce"] and "=" not in r.headers["Replay-Nonce"]
    assert head.headers["Replay-Nonce"] != get.headers["Replay-Nonce"]
    assert 'rel="index"' in head.headers["Link"]


async def test_a_reused_nonce_is_bad_nonce_with_a_fresh_one(client: Client) -> None:
    nonce = await client.nonce()
    ok = await client.post(client.kid or "", nonce=nonce)
    assert ok.status == 200
    again = await client.post(client.kid or "", nonce=nonce)
    assert again.status == 400 and again.problem == "badNonce"
    assert again.headers["Replay-Nonce"] not in (nonce, ok.headers["Replay-Nonce"])
    made_up = await client.post(client.kid or "", nonce="AAAAAAAAAAAAAAAAAAAAAA")
    assert made_up.problem == "badNonce"
    fresh = again.headers["Replay-Nonce"]
    assert (await client.post(client.kid or "", nonce=fresh)).status == 200


async def test_every_post_response_carries_a_nonce_errors_included(client: Client) -> None:
    replies = [
        await client.raw(client.directory["newOrder"], {"x": 1}),
        await client.raw(client.directory["newOrder"], b"not json"),
        await client.raw(client.directory["newOrder"], {}, content_type="application/json"),
        await client.new_order("n.example.com"),
        await client.post(client.directory["newOrder"], {"identifiers": "x"}),
    ]
    for r in replies:
        assert r.headers.get("Replay-Nonce"), (r.status, r.body)


async def test_wrong_media_type_is_415_and_get_on_post_resources_is_405(client: Client) -> None:
    r = await client.raw(client.directory["newOrder"], {}, content_type="application/json")
    assert r.status == 415 and r.problem == "malformed"
    g = await client.http.get("/acme/new-order")
    assert g.status == 405 and (await g.json())["type"].endswith(":malformed")


async def test_url_mismatch_is_unauthorized(client: Client) -> None:
    body = jws(
        client.key,
        None,
        {"nonce": await client.nonce(), "url": client.directory["newOrder"], "kid": client.kid},
    )
    r = await client.raw(client.kid or "", body)
    assert r.status == 403 and r.problem == "unauthorized"


async def test_a_bad_signature_is_refused(client: Client) -> None:
    body = jws(
        client.key, None, {"nonce": await client.nonce(), "url": client.kid, "kid": client.kid}
    )
    body["signature"] = b64e(b"\x01" * 64)
    r = await client.raw(client.kid or "", body)
    assert r.status == 400 and r.problem == "malformed"


async def test_kid_of_another_account_is_refused(client: Client) -> None:
    stranger = await other(client)
    r = await stranger.post(client.kid or "", kid=client.kid)  # signed with the wrong key
    assert r.status == 400 and r.problem == "malformed"
    r = await stranger.post(client.kid or "")  # own kid, other account's URL
    assert r.status == 403 and r.problem == "unauthorized"
    r = await client.post(client.directory["newOrder"], {}, kid="https://acme.test/acme/acct/nope")
    assert r.status == 400 and r.problem == "accountDoesNotExist"


async def test_jwk_where_kid_is_required_is_malformed(client: Client) -> None:
    r = await client.post(client.directory["newOrder"], {"identifiers": []}, use_jwk=True)
    assert r.status == 400 and r.problem == "malformed"


async def test_unsupported_algorithm_lists_algorithms(client: Client) -> None:
    p64 = b64e(
        json.dumps(
            {"alg": "HS256", "nonce": await client.nonce(), "url": client.kid, "kid": client.kid}
        ).encode()
    )
    r = await client.raw(client.kid or "", {"protected": p64, "payload": "", "signature": "AA"})
    assert (
        r.status == 400 and r.problem == "badSignatureAlgorithm" and "ES256" in r.json["algorithms"]
    )


async def test_weak_account_key_is_bad_public_key(make_client: Callable[..., Any]) -> None:
    c = await make_client()
    c.key = rsa.generate_private_key(65537, 1024)
    r = await c.register()
    assert r.status == 400 and r.problem == "badPublicKey"


async def test_account_create_existing_and_only_return_existing(
    make_client: Callable[..., Any],
) -> None:
    c = await make_client()
    missing = await c.post(c.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    assert missing.status == 400 and missing.problem == "accountDoesNotExist"
    created = await c.register(contact=["mailto:a@example.com"])
    assert created.status == 201 and created.json["status"] == "valid"
    assert created.json["orders"].endswith("/orders") and "onlyReturnExisting" not in created.json
    again = await c.register()
    assert again.status == 200 and again.headers["Location"] == created.headers["Location"]
    existing = await c.post(c.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    assert existing.status == 200 and existing.headers["Location"] == created.headers["Location"]


async def test_contacts_are_checked(make_client: Callable[..., Any]) -> None:
    c = await make_client()
    assert (await c.register(contact=["tel:+1555"])).problem == "unsupportedContact"
    assert (await c.register(contact=["mailto:nobody"])).problem == "invalidContact"
    await c.register()
    r = await c.post(c.kid or "", {"contact": ["mailto:new@example.com"]})
    assert r.json["contact"] == ["mailto:new@example.com"]


async def test_terms_of_service_must_be_agreed(make_client: Callable[..., Any]) -> None:
    c = await make_client('terms_of_service = "https://example.com/tos"\n')
    assert c.directory["meta"]["termsOfService"] == "https://example.com/tos"
    r = await c.post(c.directory["newAccount"], {}, use_jwk=True)
    assert r.status == 403 and r.problem == "userActionRequired"  # test_acme_terms.py
    assert (await c.register()).status == 201


async def test_deactivated_account_gets_401(client: Client) -> None:
    r = await client.post(client.kid or "", {"status": "deactivated"})
    assert r.status == 200 and r.json["status"] == "deactivated"
    after = await client.new_order("x.example.com")
    assert after.status == 401 and after.problem == "unauthorized"
    bad = Client(client.http)
    await bad.get_directory()
    await bad.register()
    assert (await bad.post(bad.kid or "", {"status": "revoked"})).problem == "malformed"


async def _eab_key(c: Client, **kw: Any) -> tuple[str, bytes]:
    acme = c.http.app[ACME]
    secret = new_hmac_key()
    kid = "kid-test-" + str(len(acme.tasks)) + kw.get("suffix", "")
    from datetime import UTC, datetime

    await acme.store.write(
        acme.repo.put_eab_key,
        kid,
        kw.get("principal", "team"),
        kw.get("templates", []),
        kw.get("domains", []),
        seal(acme.settings.eab_encryption_key, kid, secret),
        datetime.now(UTC),
    )
    return kid, secret


async def test_external_account_binding_rules(make_client: Callable[..., Any]) -> None:
    c = await make_client("external_account_required = true\n")
    assert c.directory["meta"]["externalAccountRequired"] is True
    url = c.directory["newAccount"]
    r = await c.register()
    assert r.status == 403 and r.problem == "externalAccountRequired"
    kid, secret = await _eab_key(c)
    jwk = jwk_of(c.key)
    for bad, problem in [
        (eab_jws(kid, b"wrong key", jwk, url), "unauthorized"),
        (eab_jws("kid-unknown", secret, jwk, url), "unauthorized"),
        (eab_jws(kid, secret, jwk, "https://acme.test/acme/other"), "unauthorized"),
        (
            eab_jws(kid, secret, jwk_of(ec.generate_private_key(ec.SECP256R1())), url),
            "unauthorized",
        ),
        ({"protected": "e30", "payload": "", "signature": ""}, "malformed"),
    ]:
        r = await c.register(externalAccountBinding=bad)
        assert r.problem == problem, (problem, r.body)
    ok = await c.register(externalAccountBinding=eab_jws(kid, secret, jwk, url))
    assert ok.status == 201 and "externalAccountBinding" in ok.json
    # One key binds several accounts (cert-manager re-registering, fleets sharing a key).
    second = Client(c.http)
    await second.get_directory()
    r2 = await second.register(externalAccountBinding=eab_jws(kid, secret, jwk_of(second.key), url))
    assert r2.status == 201
    # An existing key with EAB again: 200 + Location (nginx-acme sends EAB every time).
    again = await c.register(externalAccountBinding=eab_jws(kid, secret, jwk, url))
    assert again.status == 200 and again.headers["Location"] == ok.headers["Location"]


async def test_eab_principal_templates_and_pre_authorized_domains(
    make_client: Callable[..., Any],
) -> None:
    c = await make_client('profiles = ["acme-tls", "tls-server"]\n', testing="")
    kid, secret = await _eab_key(c, templates=["acme-tls"], domains=["*.corp.internal"])
    r = await c.register(
        externalAccountBinding=eab_jws(kid, secret, jwk_of(c.key), c.directory["newAccount"])
    )
    assert r.status == 201
    order = await c.new_order("host1.corp.internal")
    assert order.json["status"] == "ready"  # pre-authorized: no challenge (no validation run)
    fin = await c.finalize(order.json)
    assert fin.json["status"] == "valid", fin.body
    other_profile = await c.new_order("host1.corp.internal", profile="tls-server")
    assert other_profile.status == 403 and other_profile.problem == "unauthorized"
    outside = await c.new_order("www.example.com")
    assert outside.json["status"] == "pending"
    service = components_of(c.http.app).service
    record = await service.store.find_request("acme", order.headers["Location"].rsplit("/", 1)[1])
    assert record is not None and record.requester.principal == "team"
    assert record.requester.auth_method == "eab"


def _inner(
    new_key: Any, url: str, account: str, old_jwk: dict[str, str], **hdr: Any
) -> dict[str, str]:
    return jws(
        new_key,
        {"account": account, "oldKey": old_jwk},
        {"jwk": jwk_of(new_key), "url": url, **hdr},
    )


async def test_key_change_nine_checks_then_rollover(client: Client) -> None:
    url = client.directory["keyChange"]
    acct = client.kid or ""
    old = jwk_of(client.key)
    new = ec.generate_private_key(ec.SECP256R1())
    stranger = await other(client)
    order = await client.new_order("kc.example.com")  # must survive the rollover
    # 1. outer signature / account: signed by a key without the account's kid
    r = await client.post(url, _inner(new, url, acct, old), key=new)
    assert r.status == 400
    cases: list[tuple[Any, int, str]] = [
        ({"not": "a jws"}, 400, "malformed"),  # 2. inner JWS well-formed
        (
            jws(new, {"account": acct, "oldKey": old}, {"kid": acct, "url": url}),
            400,
            "malformed",
        ),  # 3. jwk
        ({**_inner(new, url, acct, old), "signature": b64e(b"\x00" * 64)}, 400, "malformed"),  # 4.
        (jws(new, ["x"], {"jwk": jwk_of(new), "url": url}), 400, "malformed"),  # 5. payload
        (_inner(new, client.directory["newOrder"], acct, old), 400, "malformed"),  # 6. url
        (_inner(new, url, stranger.kid or "", old), 400, "malformed"),  # 7. account
        (_inner(new, url, acct, jwk_of(new)), 400, "malformed"),  # 8. oldKey
        (_inner(stranger.key, url, acct, old), 409, "malformed"),  # 9. key in use
    ]
    for i, (payload, status, problem) in enumerate(cases, start=2):
        r = await client.post(url, payload)
        assert (r.status, r.problem) == (status, problem), (i, r.body)
        if status == 409:
            assert r.headers["Location"] == stranger.kid
    ok = await client.post(url, _inner(new, url, acct, old))
    assert ok.status == 200, ok.body
    assert (await client.post(acct)).status == 400  # the old key no longer verifies
    client.key = new
    assert (await client.post(acct)).status == 200
    assert (await client.post(order.headers["Location"])).json["status"] == "pending"


async def test_rate_limits_per_account_give_429_with_retry_after(
    make_client: Callable[..., Any],
) -> None:
    c = await make_client('rate_limit_account = 3\nrate_limit_window = "1h"\n')
    await c.register()
    statuses = [(await c.post(c.kid or "")) for _ in range(4)]
    limited = statuses[-1]
    assert limited.status == 429 and limited.problem == "rateLimited"
    assert int(limited.headers["Retry-After"]) > 0 and limited.headers["Replay-Nonce"]


async def test_rate_limits_per_ip(make_client: Callable[..., Any]) -> None:
    c = await make_client('rate_limit_ip = 2\nrate_limit_window = "1h"\n')
    await c.register()
    r = await c.post(c.kid or "")
    r = await c.post(c.kid or "")
    assert r.status == 429 and r.problem == "rateLimited"


@pytest.mark.parametrize("payload", [b"", b"{}", b"[]", b'{"protected":1}', b"\xff" * 10])
async def test_junk_bodies_are_problems_not_500(client: Client, payload: bytes) -> None:
    for url in (
        client.directory["newAccount"],
        client.directory["newOrder"],
        client.directory["revokeCert"],
    ):
        r = await client.raw(url, payload)
        assert 400 <= r.status < 500 and r.problem, (url, r.status, r.body)


async def test_random_and_mutated_jws_through_the_app_never_give_a_500(client: Client) -> None:
    """A seeded fuzz through the full stack: byte flips of valid JWS bodies and random JSON."""
    import random

    rng = random.Random(8555)
    urls = [client.directory[k] for k in ("newAccount", "newOrder", "revokeCert", "keyChange")]
    urls.append(client.kid or "")
    valid = json.dumps(
        jws(
            client.key,
            {"identifiers": [{"type": "dns", "value": "f.example.com"}]},
            {"nonce": await client.nonce(), "url": urls[1], "kid": client.kid},
        )
    ).encode()

    def random_json(depth: int = 0) -> Any:
        pick = rng.randrange(7 if depth < 3 else 4)
        if pick == 0:
            return rng.randrange(-(2**40), 2**40)
        if pick == 1:
            return "".join(rng.choice('ab=._-+/{}"\\\u00e9') for _ in range(rng.randrange(12)))
        if pick == 2:
            return rng.choice([None, True, False, 1.5])
        if pick == 3:
            return b64e(rng.randbytes(rng.randrange(40)))
        if pick == 4:
            return [random_json(depth + 1) for _ in range(rng.randrange(4))]
        keys = ["protected", "payload", "signature", "header", "alg", "jwk", "kid", "x"]
        return {rng.choice(keys): random_json(depth + 1) for _ in range(rng.randrange(5))}

    for i in range(300):
        if i % 2:
            body = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                body[rng.randrange(len(body))] = rng.randrange(256)
            data = bytes(body)
        else:
            data = json.dumps(random_json()).encode()
        r = await client.raw(rng.choice(urls), data)
        assert r.status < 500 and r.problem, (i, r.status, r.body)


async def test_expired_nonces_are_refused_and_purged(client: Client) -> None:
    import datetime as dt

    import sqlalchemy as sa

    from protocols.acme.tables import acme_nonces

    acme = client.http.app[ACME]
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    await acme.store.write(acme.repo.issue_nonce, "expiredNonceValue0000", past, None)
    r = await client.post(client.kid or "", nonce="expiredNonceValue0000")
    assert r.problem == "badNonce"
    await acme.store.write(acme.repo.issue_nonce, "expiredNonceValue0001", past, None)
    assert await acme.store.write(acme.repo.purge_nonces, dt.datetime.now(dt.UTC)) >= 1

    def count(conn: Any) -> int:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(acme_nonces)
                .where(acme_nonces.c.expires_at < dt.datetime.now(dt.UTC))
            ).scalar_one()
        )

    assert await acme.store.read(count) == 0
