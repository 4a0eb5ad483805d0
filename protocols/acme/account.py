"""Account resources: newAccount, account update/deactivation, orders list, keyChange
(RFC 8555 §7.3)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from protocols.acme import jws as J
from protocols.acme import state
from protocols.acme.base import Acme, handler
from protocols.acme.eab import binding_echo, parse_binding, unseal
from protocols.acme.messages import Problem
from protocols.acme.ratelimit import Limit, OverLimit

MAX_CONTACTS = 10


def account_json(acme: Acme, account: state.Account) -> dict[str, Any]:
    body: dict[str, Any] = {"status": account.status}
    if account.contact:
        body["contact"] = account.contact
    terms = acme.settings.terms_of_service
    if terms and account.tos_agreed == terms:  # §7.1.2: agreed to the current terms
        body["termsOfServiceAgreed"] = True
    body["orders"] = acme.url("acct", account.id, "orders")
    return body


def parse_contact(value: Any) -> list[str]:
    """RFC 8555 §7.3: mailto URLs only (``unsupportedContact`` for other schemes)."""
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise Problem.malformed("contact must be an array of URL strings")
    if len(value) > MAX_CONTACTS:
        raise Problem.invalid_contact(f"at most {MAX_CONTACTS} contacts")
    for contact in value:
        scheme, _, address = contact.partition(":")
        if scheme.lower() != "mailto":
            raise Problem.unsupported_contact(f"only mailto: contacts are supported: {contact!r}")
        local, at, domain = address.partition("@")
        if not at or not local or "." not in domain or "?" in address or "," in address:
            raise Problem.invalid_contact(f"{contact!r} is not a valid email address")
    return list(value)


@handler
async def new_account(acme: Acme, request: web.Request) -> web.Response:
    signed = await acme.authenticate(request, want_jwk=True, terms=False)
    payload = signed.payload()
    if signed.account is not None:  # §7.3.1: the key already has an account -> 200 + Location
        location = acme.url("acct", signed.account.id)
        return await acme.reply(
            request, account_json(acme, signed.account), headers={"Location": location}
        )
    if payload.get("onlyReturnExisting") is True:
        raise Problem.account_does_not_exist()
    contact = parse_contact(payload.get("contact", []))
    agreed = payload.get("termsOfServiceAgreed") is True
    if acme.settings.terms_required and not agreed:
        # §7.3: MUST reject; the type is the one §7.3.3 gives for terms not agreed to.
        raise acme.terms_problem(
            'agree to the terms of service: newAccount with "termsOfServiceAgreed": true'
        )
    jwk = J.public_jwk(signed.jws.jwk or {})
    eab = payload.get("externalAccountBinding")
    echo = None
    kid = None
    if eab is not None:
        binding = parse_binding(eab, signed.jws.url, jwk)
        key = await acme.store.read(acme.repo.get_eab_key, binding.kid)
        if key is None:
            raise Problem.unauthorized(f"unknown external account binding key {binding.kid!r}")
        J.verify_mac(
            binding.jws, unseal(acme.settings.eab_encryption_key, binding.kid, key["secret"])
        )
        kid, echo = binding.kid, binding_echo(binding)
    elif acme.settings.external_account_required:
        raise Problem.external_account_required()
    now = acme.now()
    settings = acme.settings
    limit = Limit.of(
        f"new-account:{request.remote}",
        settings.rate_limit_new_accounts,
        settings.rate_limit_new_accounts_window,
        now,
    )
    made = await acme.write(
        request,
        acme.repo.create_account,
        str(uuid.uuid4()),
        J.thumbprint(jwk),
        jwk,
        contact,
        kid,
        now,
        settings.terms_of_service if agreed and settings.terms_of_service else None,
        limit,
    )
    if isinstance(made, OverLimit):
        raise made.problem(f"new accounts from {request.remote}", now)
    account, created = made
    body = account_json(acme, account)
    if created and echo is not None:
        body["externalAccountBinding"] = echo
    location = acme.url("acct", account.id)
    return await acme.reply(
        request, body, status=201 if created else 200, headers={"Location": location}
    )


@handler
async def account(acme: Acme, request: web.Request) -> web.Response:
    """POST to the account URL: fetch, update contact, deactivate, or agree to the current
    terms of service (§7.3.2, §7.3.3, §7.3.6). Open to an account that has not agreed yet."""
    signed = await acme.authenticate(request, terms=False)
    me = signed.require_account()
    if me.id != request.match_info["id"]:
        raise Problem.unauthorized("account URL does not match the signer's 'kid'")
    if signed.post_as_get:
        return await acme.reply(request, account_json(acme, me))
    payload = signed.payload()
    contact = parse_contact(payload["contact"]) if "contact" in payload else None
    status = payload.get("status")
    if status is not None and status != "deactivated":
        raise Problem.malformed("the only status a client may set is 'deactivated'")
    # §7.3.2 has the server ignore a client's termsOfServiceAgreed, yet §7.3.3 has clients
    # agree to changed terms through that very field and names no other way: true agrees to
    # the terms in force now; anything else is ignored (agreement cannot be withdrawn).
    terms = acme.settings.terms_of_service
    agree = terms if terms and payload.get("termsOfServiceAgreed") is True else None
    updated = await acme.write(request, acme.repo.update_account, me.id, contact, status, agree)
    acme.accounts.forget(me.id)  # changed (or not): the next request reads it afresh
    assert updated is not None
    return await acme.reply(request, account_json(acme, updated))


@handler
async def orders(acme: Acme, request: web.Request) -> web.Response:
    """The account's orders list (§7.1.2.1)."""
    signed = await acme.authenticate(request)
    me = signed.require_account()
    if me.id != request.match_info["id"]:
        raise Problem.unauthorized("this orders list belongs to another account")
    ids = await acme.store.read(acme.repo.orders_of, me.id)
    return await acme.reply(request, {"orders": [acme.url("order", i) for i in ids]})


@handler
async def key_change(acme: Acme, request: web.Request) -> web.Response:
    """Key rollover with the nine checks of RFC 8555 §7.3.5 (numbered below)."""
    signed = await acme.authenticate(request)  # 1. outer signature, account active
    me = signed.require_account()
    inner = J.parse_jws(signed.payload())  # 2. inner JWS well-formed
    new_jwk = inner.jwk
    if new_jwk is None or "kid" in inner.protected:  # 3. inner header has jwk
        raise Problem.malformed("inner JWS must carry the new key as 'jwk'")
    if "nonce" in inner.protected:
        raise Problem.malformed("inner JWS must not have a 'nonce'")
    if inner.alg not in J.ALGORITHMS:
        raise Problem.bad_signature_algorithm(inner.alg, J.ALGORITHMS)
    J.verify(inner, J.load_jwk(new_jwk))  # 4. inner signature by the new key
    payload = inner.payload_json()  # 5. inner payload well-formed
    if not isinstance(payload.get("account"), str) or not isinstance(payload.get("oldKey"), dict):
        raise Problem.malformed("inner payload must have 'account' and 'oldKey'")
    if inner.protected.get("url") != signed.jws.url:  # 6. same url
        raise Problem.malformed("inner and outer JWS 'url' differ")
    if payload["account"] != signed.jws.kid:  # 7. account == outer kid
        raise Problem.malformed("inner 'account' is not the signer's account URL")
    if J.public_jwk(payload["oldKey"]) != J.public_jwk(me.jwk):  # 8. oldKey == current key
        raise Problem.malformed("'oldKey' is not the account's current key")
    jwk = J.public_jwk(new_jwk)
    holder = await acme.write(
        request, acme.repo.change_key, me.id, me.thumbprint, J.thumbprint(jwk), jwk
    )
    acme.accounts.forget(me.id)
    if holder is not None:  # 9. no other account uses the new key
        problem = Problem.malformed("the new key is already in use by an account", 409)
        problem.headers["Location"] = acme.url("acct", holder.id)
        raise problem
    updated = await acme.store.read(acme.repo.get_account, me.id)
    assert updated is not None
    return await acme.reply(request, account_json(acme, updated))
