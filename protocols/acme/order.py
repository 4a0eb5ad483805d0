"""Order resources: newOrder and the order object (RFC 8555 §7.4, RFC 9773 §5, profiles §4)."""

from __future__ import annotations

import fnmatch
import secrets
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

from aiohttp import web

from gateway.errors import PolicyDenied
from protocols.acme import state
from protocols.acme.base import Acme, handler
from protocols.acme.errors import is_csr_rule, problem_for
from protocols.acme.finalize import dry_run, settle
from protocols.acme.messages import (
    AcmeIdentifier,
    NewOrder,
    Problem,
    parse_cert_id,
    parse_new_order,
)
from protocols.acme.order_view import load_order, order_json
from protocols.acme.ratelimit import Limit, OverLimit


def challenge_types(ident: AcmeIdentifier) -> tuple[str, ...]:
    """Which challenges an identifier gets: wildcards only dns-01 (§7.1.4), IPs never dns-01
    (RFC 8738 §7)."""
    if ident.wildcard:
        return ("dns-01",)
    if ident.type == "ip":
        return ("http-01", "tls-alpn-01")
    return ("dns-01", "http-01", "tls-alpn-01")


def select_template(acme: Acme, request: web.Request, new: NewOrder, me: state.Account) -> str:
    """Profile name = template name (protocols.md 3.11); a per-template directory fixes it."""
    fixed = request.match_info.get("template")
    if fixed is not None:
        if new.profile not in (None, fixed):
            raise Problem.invalid_profile(f"this directory only offers profile {fixed!r}")
        template = fixed
    else:
        template = new.profile or acme.settings.default_template
    if template not in acme.settings.profiles or template not in acme.policy.templates:
        raise Problem.invalid_profile(f"profile {template!r} is not offered")
    if me.eab_templates and template not in me.eab_templates:
        raise Problem.unauthorized(f"this account's EAB key may not use profile {template!r}")
    return template


@handler
async def new_order(acme: Acme, request: web.Request) -> web.Response:
    signed = await acme.authenticate(request)
    me = signed.require_account()
    new = parse_new_order(signed.payload(), acme.settings.max_identifiers)
    template = select_template(acme, request, new, me)
    now = acme.now()
    try:
        dry_run(acme, me, template, new, now)
    except PolicyDenied as denial:
        if denial.rule == "validity":
            raise Problem.malformed(f"cannot honour notBefore/notAfter: {denial.reason}") from None
        if not is_csr_rule(denial.rule):
            problem = problem_for(denial.code, denial.reason, denial.rule)
            if problem.kind == "rejectedIdentifier" and len(new.identifiers) > 1:
                problem.subproblems = _rejected_each(acme, me, template, new, now)
            raise problem from None
    if new.replaces is not None:
        await check_replaces(acme, me, new)
    order_id = str(uuid.uuid4())
    wanted = [(i.type, i.authz_value, i.wildcard) for i in new.identifiers]
    reused = await acme.store.read(acme.repo.reusable_authzs, me.id, wanted, now)
    authz_ids: list[str] = []
    fresh: list[state.NewAuthz] = []
    for ident, existing in zip(new.identifiers, reused, strict=True):
        if existing is not None:
            authz_ids.append(existing)
            continue
        authz = _new_authz(acme, me, ident, now)
        fresh.append(authz)
        authz_ids.append(authz.id)
    order = state.Order(
        order_id,
        me.id,
        "pending",
        template,
        template,
        [i.to_json() for i in new.identifiers],
        authz_ids,
        new.not_before,
        new.not_after,
        now + timedelta(seconds=acme.settings.order_lifetime),
        None,
        new.replaces,
        0,
        None,
        None,
    )
    settings = acme.settings
    limit = Limit.of(
        f"new-order:{me.id}",
        settings.rate_limit_new_orders,
        settings.rate_limit_new_orders_window,
        now,
    )
    made = await acme.write(request, acme.repo.create_order, order, fresh, now, limit)
    if isinstance(made, OverLimit):
        raise made.problem("new orders for this account", now)
    # Reused authorizations are valid; fresh ones are valid only when pre-authorized.
    status = "ready" if all(a.status == "valid" for a in fresh) else "pending"
    return await acme.reply(
        request,
        order_json(acme, order, status),
        status=201,
        headers={"Location": acme.url("order", order_id)},
    )


def _new_authz(
    acme: Acme, me: state.Account, ident: AcmeIdentifier, now: datetime
) -> state.NewAuthz:
    value = ident.authz_value
    if any(fnmatch.fnmatchcase(ident.value, p) for p in me.eab_domains):
        # Pre-authorized for this EAB principal (internal names): valid, no challenge.
        expires = now + timedelta(seconds=acme.settings.valid_authz_lifetime)
        return state.NewAuthz(
            str(uuid.uuid4()), ident.type, value, ident.wildcard, "valid", expires, ()
        )
    challenges = tuple(
        (str(uuid.uuid4()), kind, secrets.token_urlsafe(32)) for kind in challenge_types(ident)
    )
    expires = now + timedelta(seconds=acme.settings.pending_authz_lifetime)
    return state.NewAuthz(
        str(uuid.uuid4()), ident.type, value, ident.wildcard, "pending", expires, challenges
    )


async def check_replaces(acme: Acme, me: state.Account, new: NewOrder) -> None:
    """RFC 9773 §5: the replaced certificate is this account's (or its EAB principal's),
    shares an identifier, and no live order replaces it yet (409 ``alreadyReplaced``)."""
    assert new.replaces is not None
    _, serial = parse_cert_id(new.replaces)
    record = await acme.records.get_certificate(format(serial, "x"))
    if record is None:
        raise Problem.malformed("the certificate named by 'replaces' is unknown", 404)
    owner = await acme.store.read(acme.repo.order_for_certificate, record.serial)
    same_principal = me.principal is not None and record.requester == me.principal
    if not ((owner is not None and owner.account_id == me.id) or same_principal):
        raise Problem.unauthorized(
            "requester account did not request the certificate being replaced by this order"
        )
    names = set(record.sans)
    if not any(f"{i.type}:{i.value}" in names or i.value in names for i in new.identifiers):
        raise Problem.malformed("the order shares no identifier with the replaced certificate")
    now = acme.now()
    for other in await acme.store.read(acme.repo.order_replacing, new.replaces):
        got = await acme.store.read(acme.repo.get_order, other.id)
        if got is not None and state.effective_order_status(got[0], got[1], now) != "invalid":
            raise Problem.already_replaced("the certificate is already being replaced by an order")


@handler
async def order(acme: Acme, request: web.Request) -> web.Response:
    """POST-as-GET of an order; a ``processing`` order reads the outcome from the core."""
    signed = await acme.authenticate(request)
    if not signed.post_as_get:
        raise Problem.malformed("an order is fetched with POST-as-GET (empty payload)")
    current, status = await load_order(acme, signed, request.match_info["id"], request)
    headers: dict[str, str] = {}
    if status == "processing":
        current, status, retry = await settle(acme, current)
        if retry is not None:
            headers["Retry-After"] = str(retry)
    return await acme.reply(request, order_json(acme, current, status), headers=headers)


def _rejected_each(
    acme: Acme, me: state.Account, template: str, new: NewOrder, now: datetime
) -> list[dict[str, object]]:
    """RFC 8555 §6.7.1 subproblems: which identifiers policy refuses, each with its rule."""
    found: list[dict[str, object]] = []
    for ident in new.identifiers:
        try:
            dry_run(acme, me, template, replace(new, identifiers=(ident,)), now)
        except PolicyDenied as denial:
            if is_csr_rule(denial.rule):
                continue
            doc = problem_for(denial.code, denial.reason, denial.rule).document()
            found.append({**doc, "identifier": ident.to_json()})
    return found
