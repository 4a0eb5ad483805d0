# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)
"""The ACME server through the real app factory (aiohttp test client, in-process): issuance,
download, orders state machine, finalize rules, profiles, pending (after issuance:
test_acme_lifecycle.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from protocols.acme.messages import b64e, certificate_cert_id
from tests.acme_fixtures import client, make_client, other  # noqa: F401
from tests.acme_helpers import Client, jws
from tests.helpers import make_csr


async def test_full_flow_issues_a_certificate_for_exactly_the_ordered_names(client: Client) -> None:
    _order, fin = await client.issue("www.example.com", "example.com", "192.0.2.7")
    assert fin.status == 200, fin.body
    assert fin.json["status"] == "valid"
    cert_r = await client.post(fin.json["certificate"])
    assert cert_r.status == 200
    assert cert_r.headers["Content-Type"].startswith("application/pem-certificate-chain")
    assert cert_r.headers["Replay-Nonce"]
    chain = x509.load_pem_x509_certificates(cert_r.body)
    sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == ["example.com", "www.example.com"]
    assert [str(i) for i in sans.get_values_for_type(x509.IPAddress)] == ["192.0.2.7"]
    assert chain[0].issuer == chain[1].subject
    # RFC 9773 §2: the AKI keyIdentifier is present so ARI can name the certificate.
    assert certificate_cert_id(chain[0]) is not None


async def test_alternate_chain_is_linked_and_has_the_same_leaf(client: Client) -> None:
    _, fin = await client.issue("alt.example.com")
    main = await client.post(fin.json["certificate"])
    links = main.headers.getall("Link")
    alternates = [link.split(";")[0].strip("<>") for link in links if 'rel="alternate"' in link]
    assert len(alternates) == 1
    alt = await client.post(alternates[0])
    assert alt.status == 200
    a, b = x509.load_pem_x509_certificates(main.body), x509.load_pem_x509_certificates(alt.body)
    assert a[0] == b[0] and len(b) == len(a) + 1 and b[-1].subject == b[-1].issuer


async def test_single_certificate_format_links_the_issuer_up(client: Client) -> None:
    _, fin = await client.issue("der.example.com")
    url = fin.json["certificate"]
    body = jws(client.key, None, {"nonce": await client.nonce(), "url": url, "kid": client.kid})
    r = await client.http.post(
        client.path(url),
        data=json.dumps(body),
        headers={"Content-Type": "application/jose+json", "Accept": "application/pkix-cert"},
    )
    assert r.status == 200 and r.headers["Content-Type"] == "application/pkix-cert"
    x509.load_der_x509_certificate(await r.read())
    assert '<https://acme.test/ca/issuing.crt>;rel="up"' in r.headers.getall("Link")


async def test_order_goes_pending_ready_processing_valid(client: Client) -> None:
    order = await client.new_order("sm.example.com")
    assert order.status == 201 and order.json["status"] == "pending"
    assert order.headers["Location"].startswith("https://acme.test/acme/order/")
    authz = (await client.post(order.json["authorizations"][0])).json
    assert authz["status"] == "pending"
    assert {c["type"] for c in authz["challenges"]} == {"http-01", "dns-01", "tls-alpn-01"}
    ch = authz["challenges"][0]
    r = await client.post(ch["url"], {})
    assert r.status == 200 and r.json["status"] == "valid"
    assert f'<{order.json["authorizations"][0]}>;rel="up"' in r.headers.getall("Link")
    again = await client.post(order.headers["Location"])
    assert again.json["status"] == "ready"
    fin = await client.finalize(order.json)
    assert fin.json["status"] == "valid"
    # finalize again: the order is no longer ready
    second = await client.finalize(order.json)
    assert second.status == 403 and second.problem == "orderNotReady"


async def test_finalize_before_ready_is_order_not_ready(client: Client) -> None:
    order = await client.new_order("early.example.com")
    r = await client.finalize(order.json)
    assert r.status == 403 and r.problem == "orderNotReady"


async def test_bad_csr_leaves_the_order_ready_and_a_good_one_then_succeeds(client: Client) -> None:
    order = await client.new_order("csr.example.com")
    authz = (await client.post(order.json["authorizations"][0])).json
    await client.post(authz["challenges"][0]["url"], {})
    wrong_names = await client.finalize(order.json, dns=("csr.example.com", "extra.example.com"))
    assert wrong_names.status == 400 and wrong_names.problem == "badCSR"
    weak = rsa.generate_private_key(65537, 1024)
    weak_r = await client.finalize(order.json, key=weak, dns=("csr.example.com",))
    assert weak_r.status == 400 and weak_r.problem == "badCSR", weak_r.body
    assert (await client.post(order.headers["Location"])).json["status"] == "ready"
    good = await client.finalize(order.json)
    assert good.json["status"] == "valid"


async def test_garbage_csr_is_bad_csr(client: Client) -> None:
    _order, _ = await client.issue("g.example.com")
    order2 = await client.new_order("g.example.com")  # authz reused: already ready
    assert order2.json["status"] == "ready"
    r = await client.post(order2.json["finalize"], {"csr": b64e(b"\x30\x03\x02\x01\x00")})
    assert r.status == 400 and r.problem == "badCSR"


async def test_valid_authorization_is_reused_per_account_only(client: Client) -> None:
    await client.issue("reuse.example.com")
    again = await client.new_order("reuse.example.com")
    assert again.json["status"] == "ready"
    stranger = await other(client)
    theirs = await stranger.new_order("reuse.example.com")
    assert theirs.json["status"] == "pending"


async def test_wildcard_gets_only_dns01_and_ip_never_dns01(client: Client) -> None:
    order = await client.new_order("*.wild.example.com", "198.51.100.1")
    authzs = [(await client.post(u)).json for u in order.json["authorizations"]]
    by_type = {a["identifier"]["type"]: a for a in authzs}
    assert (
        by_type["dns"]["wildcard"] is True
        and by_type["dns"]["identifier"]["value"] == "wild.example.com"
    )
    assert [c["type"] for c in by_type["dns"]["challenges"]] == ["dns-01"]
    assert {c["type"] for c in by_type["ip"]["challenges"]} == {"http-01", "tls-alpn-01"}


async def test_unsupported_and_rejected_identifiers(client: Client) -> None:
    r = await client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "email", "value": "a@b.c"}]}
    )
    assert r.status == 400 and r.problem == "unsupportedIdentifier"
    r = await client.new_order("bad_name.example.com")
    assert r.status == 400 and r.problem == "rejectedIdentifier"


async def test_policy_refusal_names_the_rule(make_client: Callable[..., Any]) -> None:
    c = await make_client()
    await c.register()
    # acme-tls allows wildcards, tls-server does not; the policy dry run names the rule.
    r = await c.new_order("*.example.com", profile="acme-tls")
    assert r.status == 201
    c2 = await make_client('profiles = ["tls-server"]\n')
    await c2.register()
    r = await c2.new_order("*.example.com", profile="tls-server")
    assert (
        r.status == 400 and r.problem == "rejectedIdentifier" and "san-wildcard" in r.json["detail"]
    )
    both = await c2.new_order("ok.example.com", "*.example.com", profile="tls-server")
    assert both.problem == "rejectedIdentifier"
    (sub,) = both.json["subproblems"]
    assert sub["identifier"] == {"type": "dns", "value": "*.example.com"}
    assert sub["type"].endswith(":rejectedIdentifier") and "san-wildcard" in sub["detail"]


async def test_profiles_select_templates_and_unknown_profile_is_invalid_profile(
    client: Client,
) -> None:
    meta = client.directory["meta"]
    assert set(meta["profiles"]) == {"acme-tls", "tls-server", "approval-required"}
    assert meta["externalAccountRequired"] is False
    default = await client.new_order("p.example.com")
    assert default.json["profile"] == "acme-tls"
    chosen = await client.new_order("p.example.com", profile="tls-server")
    assert chosen.json["profile"] == "tls-server"
    r = await client.new_order("p.example.com", profile="device")
    assert r.status == 400 and r.problem == "invalidProfile"


async def test_per_template_directory_fixes_the_template(client: Client) -> None:
    d = await client.http.get("/acme/tls-server/directory")
    body = await d.json()
    assert body["newOrder"] == "https://acme.test/acme/tls-server/new-order"
    assert list(body["meta"]["profiles"]) == ["tls-server"]
    r = await client.post(
        body["newOrder"], {"identifiers": [{"type": "dns", "value": "t.example.com"}]}
    )
    assert r.status == 201 and r.json["profile"] == "tls-server"
    r = await client.post(
        body["newOrder"],
        {"identifiers": [{"type": "dns", "value": "t.example.com"}], "profile": "acme-tls"},
    )
    assert r.problem == "invalidProfile"
    assert (await client.http.get("/acme/device/directory")).status == 404


async def test_not_after_is_honoured_or_refused(client: Client) -> None:
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    order = await client.new_order("v.example.com", notAfter=soon.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert order.status == 201, order.body
    authz = (await client.post(order.json["authorizations"][0])).json
    await client.post(authz["challenges"][0]["url"], {})
    fin = await client.finalize(order.json)
    cert = x509.load_pem_x509_certificates((await client.post(fin.json["certificate"])).body)[0]
    assert cert.not_valid_after_utc == soon
    far = (datetime.now(UTC) + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = await client.new_order("v.example.com", notAfter=far)
    assert r.status == 400 and r.problem == "malformed" and "notAfter" in r.json["detail"]


async def test_pending_template_keeps_the_order_processing_until_approved(client: Client) -> None:
    order = await client.new_order("approve.example.com", profile="approval-required")
    authz = (await client.post(order.json["authorizations"][0])).json
    await client.post(authz["challenges"][0]["url"], {})
    fin = await client.finalize(order.json)
    assert fin.json["status"] == "processing" and int(fin.headers["Retry-After"]) >= 1
    polled = await client.post(order.headers["Location"])
    assert polled.json["status"] == "processing" and "Retry-After" in polled.headers
    from gateway.server.app import components_of

    service = components_of(client.http.app).service
    record = await service.store.find_request("acme", order.headers["Location"].rsplit("/", 1)[1])
    assert record is not None
    await service.approve(record.id, "manager")
    done = await client.post(order.headers["Location"])
    assert done.json["status"] == "valid" and "certificate" in done.json


async def test_manager_denial_makes_the_order_invalid_with_the_error(client: Client) -> None:
    order = await client.new_order("deny.example.com", profile="approval-required")
    authz = (await client.post(order.json["authorizations"][0])).json
    await client.post(authz["challenges"][0]["url"], {})
    await client.finalize(order.json)
    from gateway.server.app import components_of

    service = components_of(client.http.app).service
    record = await service.store.find_request("acme", order.headers["Location"].rsplit("/", 1)[1])
    assert record is not None
    await service.deny(record.id, "manager", "no")
    done = await client.post(order.headers["Location"])
    assert done.json["status"] == "invalid"
    assert done.json["error"]["type"].startswith("urn:ietf:params:acme:error:")


async def test_authorization_deactivation_invalidates_the_order(client: Client) -> None:
    order = await client.new_order("deact.example.com")
    url = order.json["authorizations"][0]
    r = await client.post(url, {"status": "deactivated"})
    assert r.status == 200 and r.json["status"] == "deactivated"
    assert (await client.post(order.headers["Location"])).json["status"] == "invalid"
    again = await client.post(url, {"status": "deactivated"})
    assert again.status == 403


async def test_another_accounts_resources_are_unauthorized(client: Client) -> None:
    order, fin = await client.issue("mine.example.com")
    authz = (await client.post(order["authorizations"][0])).json
    stranger = await other(client)
    urls = (
        order["url"],
        order["authorizations"][0],
        authz["challenges"][0]["url"],
        fin.json["certificate"],
        order["finalize"],
    )
    for url in urls:
        r = await stranger.post(url)
        assert r.status == 403 and r.problem == "unauthorized", url
    for url in (order["url"].rsplit("/", 1)[0] + "/nope", "https://acme.test/acme/cert/abc"):
        r = await client.post(url)
        assert r.status == 404 and r.problem == "malformed", url


async def test_orders_list(client: Client) -> None:
    order, _ = await client.issue("list.example.com")
    acct = (await client.post(client.kid or "")).json
    listed = await client.post(acct["orders"])
    assert order["url"] in listed.json["orders"]


async def test_csr_with_an_unvalidated_name_cannot_sneak_in(client: Client) -> None:
    _order, _ = await client.issue("a.example.com")
    order2 = await client.new_order("a.example.com")
    csr = make_csr(dns=("a.example.com", "b.example.com"))
    r = await client.post(
        order2.json["finalize"], {"csr": b64e(csr.public_bytes(serialization.Encoding.DER))}
    )
    assert r.status == 400 and r.problem == "badCSR"
