# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)
"""The ACME server through the real app factory (aiohttp test client, in-process), after
issuance: revocation, renewal information (ARI), replacement, expiry and deactivation of
orders and authorizations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from protocols.acme.messages import b64e, certificate_cert_id
from tests.acme_fixtures import client, make_client, other  # noqa: F401
from tests.acme_helpers import Client


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificates(pem)[0].public_bytes(serialization.Encoding.DER)


async def test_revocation_by_issuer_account_reaches_inventory_and_crl(client: Client) -> None:
    _, fin = await client.issue("rev.example.com")
    der = _der((await client.post(fin.json["certificate"])).body)
    bad = await client.post(client.directory["revokeCert"], {"certificate": b64e(der), "reason": 7})
    assert bad.status == 400 and bad.problem == "badRevocationReason"
    r = await client.post(client.directory["revokeCert"], {"certificate": b64e(der), "reason": 4})
    assert r.status == 200 and r.headers["Replay-Nonce"]
    again = await client.post(client.directory["revokeCert"], {"certificate": b64e(der)})
    assert again.status == 400 and again.problem == "alreadyRevoked"
    crl = x509.load_der_x509_crl(await (await client.http.get("/ca/crl")).read())
    serial = x509.load_der_x509_certificate(der).serial_number
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None


async def test_revocation_by_certificate_key_and_by_authorized_account(client: Client) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    order = await client.new_order("byk.example.com")
    authz = (await client.post(order.json["authorizations"][0])).json
    await client.post(authz["challenges"][0]["url"], {})
    fin = await client.finalize(order.json, key=key, dns=("byk.example.com",))
    der = _der((await client.post(fin.json["certificate"])).body)
    stranger = await other(client)
    refused = await stranger.post(client.directory["revokeCert"], {"certificate": b64e(der)})
    assert refused.status == 403 and refused.problem == "unauthorized"
    wrong_key = await stranger.post(
        client.directory["revokeCert"], {"certificate": b64e(der)}, use_jwk=True
    )
    assert wrong_key.status == 403
    by_key = await client.post(
        client.directory["revokeCert"], {"certificate": b64e(der)}, key=key, use_jwk=True
    )
    assert by_key.status == 200, by_key.body
    # an account holding valid authorizations for every name may revoke too
    _, fin2 = await client.issue("shared.example.com")
    der2 = _der((await client.post(fin2.json["certificate"])).body)
    await stranger.issue("shared.example.com")
    assert (
        await stranger.post(client.directory["revokeCert"], {"certificate": b64e(der2)})
    ).status == 200


async def test_renewal_info_window_and_errors(client: Client) -> None:
    _, fin = await client.issue("ari.example.com")
    cert = x509.load_pem_x509_certificates((await client.post(fin.json["certificate"])).body)[0]
    cid = certificate_cert_id(cert)
    r = await client.http.get(f"/acme/renewal-info/{cid}")
    assert r.status == 200 and int(r.headers["Retry-After"]) > 0
    window = (await r.json())["suggestedWindow"]
    from datetime import UTC, datetime, timedelta

    start = datetime.fromisoformat(window["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(window["end"].replace("Z", "+00:00"))
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    overlap = min(lifetime / 5, timedelta(days=30))  # acme-tls: the template's renewal rule
    assert abs(start - (cert.not_valid_after_utc - overlap)) < timedelta(seconds=1)
    # the window ends a third of the overlap before expiry, not at notAfter (daily clients)
    assert abs(end - (cert.not_valid_after_utc - overlap / 3)) < timedelta(seconds=1)
    assert (
        await client.http.get("/acme/renewal-info/aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    ).status == 404
    assert (await client.http.get("/acme/renewal-info/not-a-cert-id")).status == 400
    der = cert.public_bytes(serialization.Encoding.DER)
    await client.post(client.directory["revokeCert"], {"certificate": b64e(der), "reason": 1})
    after = await (await client.http.get(f"/acme/renewal-info/{cid}")).json()
    end2 = datetime.fromisoformat(after["suggestedWindow"]["end"].replace("Z", "+00:00"))
    assert end2 <= datetime.now(UTC)


async def test_renewal_info_window_of_a_week_long_certificate_is_a_day_before_expiry(
    client: Client,
) -> None:
    """A short certificate (7 days, client-requested notAfter): the window opens at the
    template rule (20 % = 33.6 h before expiry) and lasts one day, ending 9.6 h before."""
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    order = await client.new_order("week.example.com", notAfter=soon.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert order.status == 201, order.body
    authz = (await client.post(order.json["authorizations"][0])).json
    await client.post(authz["challenges"][0]["url"], {})
    fin = await client.finalize(order.json)
    cert = x509.load_pem_x509_certificates((await client.post(fin.json["certificate"])).body)[0]
    r = await client.http.get(f"/acme/renewal-info/{certificate_cert_id(cert)}")
    window = (await r.json())["suggestedWindow"]
    start = datetime.fromisoformat(window["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(window["end"].replace("Z", "+00:00"))
    overlap = (cert.not_valid_after_utc - cert.not_valid_before_utc) / 5
    assert abs(start - (soon - overlap)) < timedelta(seconds=1)
    assert end - start >= timedelta(days=1) - timedelta(seconds=1)
    assert soon - end >= timedelta(hours=9)


async def test_replaces_is_echoed_and_a_second_replacement_is_already_replaced(
    client: Client,
) -> None:
    _, fin = await client.issue("rep.example.com")
    cert = x509.load_pem_x509_certificates((await client.post(fin.json["certificate"])).body)[0]
    cid = certificate_cert_id(cert)
    first = await client.new_order("rep.example.com", replaces=cid)
    assert first.status == 201 and first.json["replaces"] == cid
    second = await client.new_order("rep.example.com", replaces=cid)
    assert second.status == 409 and second.problem == "alreadyReplaced"
    stranger = await other(client)
    theirs = await stranger.new_order("rep.example.com", replaces=cid)
    assert theirs.status == 403 and theirs.problem == "unauthorized"
    fin2 = await client.finalize(first.json)
    assert fin2.json["status"] == "valid", fin2.body


async def test_expired_orders_and_authorizations_become_invalid_and_expired(
    make_client: Callable[..., Any],
) -> None:
    import asyncio

    c = await make_client('order_lifetime = "1s"\npending_authz_lifetime = "1s"\n')
    await c.register()
    order = await c.new_order("expire.example.com")
    await asyncio.sleep(1.2)
    assert (await c.post(order.headers["Location"])).json["status"] == "invalid"
    authz = await c.post(order.json["authorizations"][0])
    assert authz.json["status"] == "expired"
    # an expired authorization cannot be validated any more
    r = await c.post(authz.json["challenges"][0]["url"], {})
    assert r.json["status"] == "pending"
    assert (await c.post(order.json["authorizations"][0])).json["status"] == "expired"


async def test_valid_authorization_can_be_deactivated_and_is_then_not_reused(
    client: Client,
) -> None:
    order, _ = await client.issue("vd.example.com")
    url = order["authorizations"][0]
    assert (await client.post(url)).json["status"] == "valid"
    assert (await client.post(url, {"status": "deactivated"})).json["status"] == "deactivated"
    again = await client.new_order("vd.example.com")
    assert again.json["status"] == "pending" and again.json["authorizations"][0] != url
