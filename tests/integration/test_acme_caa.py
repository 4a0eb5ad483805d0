# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)
"""CAA (RFC 8659, RFC 8657) checked when a dns-01 challenge succeeds and again at finalize,
through the configured resolver: pebble-challtestsrv serves the CAA records (and SERVFAIL);
a small dnspython server on loopback serves what challtestsrv cannot (the critical flag,
silence)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from protocols.acme import jws as J
from protocols.acme.challenge_values import dns01_value, key_authorization
from tests.acme_fixtures import make_client  # noqa: F401
from tests.acme_helpers import ChallTestSrv, Client, challtestsrv, jwk_of
from tests.acme_helpers_dns import DNSZone, dns_server

CA = "certgate.example"


@pytest.fixture
def cts() -> Iterator[ChallTestSrv]:
    with challtestsrv() as srv:
        yield srv


async def _client(make: Callable[..., Any], port: int, extra: str = "") -> Client:
    c: Client = await make(
        f'dns_resolver = "127.0.0.1:{port}"\ncaa_identities = ["{CA}"]\n'
        'validation_timeout = "2s"\n' + extra,
        testing="",
    )
    assert (await c.register()).status == 201
    return c


async def _validate(c: Client, name: str, publish: Callable[[str, str], None]) -> dict[str, Any]:
    """Order ``name``, answer dns-01 (``publish(host, value)``), return the finished authz
    with the order's URL and body under ``"order"``."""
    order = await c.new_order(name)
    assert order.status == 201, order.body
    url = order.json["authorizations"][0]
    authz = (await c.post(url)).json
    ch = next(x for x in authz["challenges"] if x["type"] == "dns-01")
    key_auth = key_authorization(ch["token"], J.thumbprint(jwk_of(c.key)))
    publish(f"_acme-challenge.{name.removeprefix('*.')}", dns01_value(key_auth))
    assert (await c.post(ch["url"], {})).status == 200
    done = await c.wait_authz(url, 200)
    done["order"] = order.json | {"url": order.headers["Location"]}
    return done


def _caa_error(authz: dict[str, Any]) -> dict[str, Any]:
    assert authz["status"] == "invalid", authz
    error: dict[str, Any] = next(x for x in authz["challenges"] if x["type"] == "dns-01")["error"]
    assert error["type"] == "urn:ietf:params:acme:error:caa", error
    assert error["status"] == 403
    return error


@pytest.mark.interop
async def test_no_caa_records_anywhere_allow_issuance(
    make_client: Callable[..., Any], cts: ChallTestSrv
) -> None:
    c = await _client(make_client, cts.dns_port)
    authz = await _validate(c, "free.caa.test", cts.set_txt)
    assert authz["status"] == "valid"
    fin = await c.finalize(authz["order"])
    assert fin.status == 200 and fin.json["status"] == "valid", fin.body


@pytest.mark.interop
async def test_issue_for_this_ca_on_a_parent_allows(
    make_client: Callable[..., Any], cts: ChallTestSrv
) -> None:
    cts.add_caa("caa.test", ("issue", f"{CA.upper()}; somethingelse=1"))
    c = await _client(make_client, cts.dns_port)
    assert (await _validate(c, "www.deep.caa.test", cts.set_txt))["status"] == "valid"


@pytest.mark.interop
async def test_issue_for_another_ca_on_a_parent_refuses_with_a_caa_error(
    make_client: Callable[..., Any], cts: ChallTestSrv
) -> None:
    cts.add_caa("caa.test", ("issue", "other-ca.example"), ("iodef", "mailto:x@caa.test"))
    c = await _client(make_client, cts.dns_port)
    authz = await _validate(c, "www.caa.test", cts.set_txt)
    error = _caa_error(authz)
    assert "caa.test" in error["detail"] and CA in error["detail"]
    assert (await c.post(authz["order"]["url"])).json["status"] == "invalid"


@pytest.mark.interop
async def test_the_closest_caa_rrset_wins(
    make_client: Callable[..., Any], cts: ChallTestSrv
) -> None:
    cts.add_caa("caa.test", ("issue", "other-ca.example"))
    cts.add_caa("mine.caa.test", ("issue", CA))
    c = await _client(make_client, cts.dns_port)
    assert (await _validate(c, "mine.caa.test", cts.set_txt))["status"] == "valid"


@pytest.mark.interop
async def test_an_empty_issuer_authorizes_no_ca(
    make_client: Callable[..., Any], cts: ChallTestSrv
) -> None:
    cts.add_caa("closed.caa.test", ("issue", ";"))
    c = await _client(make_client, cts.dns_port)
    _caa_error(await _validate(c, "closed.caa.test", cts.set_txt))


@pytest.mark.interop
async def test_issuewild_governs_wildcards_and_only_wildcards(
    make_client: Callable[..., Any], cts: ChallTestSrv
) -> None:
    cts.add_caa("wild.caa.test", ("issue", CA), ("issuewild", "other-ca.example"))
    c = await _client(make_client, cts.dns_port)
    error = _caa_error(await _validate(c, "*.wild.caa.test", cts.set_txt))
    assert "issuewild" in error["detail"] and "*.wild.caa.test" in error["detail"]
    assert (await _validate(c, "wild.caa.test", cts.set_txt))["status"] == "valid"


@pytest.mark.interop
async def test_issue_applies_to_wildcards_when_there_is_no_issuewild(
    make_client: Callable[..., Any], cts: ChallTestSrv
) -> None:
    cts.add_caa("w2.caa.test", ("issue", CA))
    c = await _client(make_client, cts.dns_port)
    assert (await _validate(c, "*.w2.caa.test", cts.set_txt))["status"] == "valid"


@pytest.mark.interop
async def test_servfail_refuses_with_the_reason(
    make_client: Callable[..., Any], cts: ChallTestSrv
) -> None:
    cts.set_servfail("broken.caa.test")
    c = await _client(make_client, cts.dns_port)
    error = _caa_error(await _validate(c, "broken.caa.test", cts.set_txt))
    assert "SERVFAIL" in error["detail"] and "broken.caa.test" in error["detail"]


@pytest.mark.interop
async def test_accounturi_must_name_the_requesting_account(
    make_client: Callable[..., Any], cts: ChallTestSrv
) -> None:
    c = await _client(make_client, cts.dns_port)
    cts.add_caa("acct.caa.test", ("issue", f"{CA}; accounturi={c.kid}"))
    cts.add_caa("notmine.caa.test", ("issue", f"{CA}; accounturi={c.kid}x"))
    assert (await _validate(c, "acct.caa.test", cts.set_txt))["status"] == "valid"
    error = _caa_error(await _validate(c, "notmine.caa.test", cts.set_txt))
    assert "accounturi" in error["detail"]


@pytest.mark.interop
async def test_validationmethods_must_list_the_method_used(
    make_client: Callable[..., Any], cts: ChallTestSrv
) -> None:
    cts.add_caa("vm.caa.test", ("issue", f"{CA}; validationmethods=http-01,tls-alpn-01"))
    cts.add_caa("vm2.caa.test", ("issue", f"{CA}; validationmethods=http-01,dns-01"))
    c = await _client(make_client, cts.dns_port)
    error = _caa_error(await _validate(c, "vm.caa.test", cts.set_txt))
    assert "validationmethods" in error["detail"] and "dns-01" in error["detail"]
    assert (await _validate(c, "vm2.caa.test", cts.set_txt))["status"] == "valid"


@pytest.mark.interop
async def test_caa_is_off_without_caa_identities(
    make_client: Callable[..., Any], cts: ChallTestSrv
) -> None:
    cts.add_caa("caa.test", ("issue", "other-ca.example"))
    c: Client = await make_client(f'dns_resolver = "127.0.0.1:{cts.dns_port}"\n', testing="")
    assert "caaIdentities" not in c.directory["meta"]
    await c.register()
    assert (await _validate(c, "off.caa.test", cts.set_txt))["status"] == "valid"


@pytest.mark.interop
async def test_finalize_rechecks_caa_and_keeps_the_order_ready(
    make_client: Callable[..., Any], cts: ChallTestSrv
) -> None:
    c = await _client(make_client, cts.dns_port, 'caa_recheck_after = "0s"\n')
    assert c.directory["meta"]["caaIdentities"] == [CA]
    authz = await _validate(c, "later.caa.test", cts.set_txt)
    assert authz["status"] == "valid"
    cts.add_caa("later.caa.test", ("issue", "other-ca.example"))
    fin = await c.finalize(authz["order"])
    assert fin.status == 403 and fin.problem == "caa", fin.body
    assert "Replay-Nonce" in fin.headers
    (sub,) = fin.json["subproblems"]
    assert sub["identifier"] == {"type": "dns", "value": "later.caa.test"}
    assert sub["type"].endswith(":caa")
    assert (await c.post(authz["order"]["url"])).json["status"] == "ready"
    cts.clear_caa("later.caa.test")
    fin = await c.finalize(authz["order"])
    assert fin.status == 200 and fin.json["status"] == "valid", fin.body


@pytest.mark.interop
async def test_finalize_within_the_recheck_window_does_not_ask_again(
    make_client: Callable[..., Any], cts: ChallTestSrv
) -> None:
    c = await _client(make_client, cts.dns_port)  # caa_recheck_after defaults to 8h
    authz = await _validate(c, "fresh.caa.test", cts.set_txt)
    cts.add_caa("fresh.caa.test", ("issue", "other-ca.example"))
    fin = await c.finalize(authz["order"])
    assert fin.status == 200 and fin.json["status"] == "valid", fin.body


# --- a dnspython server: the critical flag, silence ---------------------------------------------


def _publish(zone: DNSZone) -> Callable[[str, str], None]:
    return lambda host, value: zone.add(host, "TXT", f'"{value}"')


@pytest.mark.parametrize(
    ("rdata", "allowed"),
    [
        (['128 tbs "unknown"', f'0 issue "{CA}"'], False),  # critical unknown tag
        (['0 tbs "unknown"', f'0 issue "{CA}"'], True),  # non-critical unknown tag: ignored
        ([f'128 issue "{CA}"', '128 iodef "mailto:a@b.test"'], True),  # critical known tags
        ([f'0 ISSUE "{CA}"'], True),  # tags match case-insensitively
        (['0 issue "certgate.example..bad"'], False),  # malformed value authorizes no one
    ],
)
async def test_caa_flags_and_tags_over_real_dns(
    make_client: Callable[..., Any], rdata: list[str], allowed: bool
) -> None:
    async with dns_server() as zone:
        zone.add("flags.test", "CAA", *rdata)
        c = await _client(make_client, zone.port)
        authz = await _validate(c, "host.flags.test", _publish(zone))
        if allowed:
            assert authz["status"] == "valid", authz
        else:
            _caa_error(authz)


async def test_a_caa_lookup_timeout_refuses(make_client: Callable[..., Any]) -> None:
    async with dns_server() as zone:
        zone.silent.add(("slow.test", "CAA"))
        c = await _client(make_client, zone.port)
        error = _caa_error(await _validate(c, "www.slow.test", _publish(zone)))
        assert "timeout" in error["detail"] and "slow.test" in error["detail"]
