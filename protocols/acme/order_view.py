"""The order object as clients see it (RFC 8555 §7.1.3), shared by order and finalize."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from protocols.acme import state
from protocols.acme.base import Acme, Signed
from protocols.acme.messages import Problem, rfc3339


def order_json(acme: Acme, order: state.Order, status: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": status,
        "expires": rfc3339(order.expires_at),
        "identifiers": order.identifiers,
    }
    if order.not_before:
        body["notBefore"] = rfc3339(order.not_before)
    if order.not_after:
        body["notAfter"] = rfc3339(order.not_after)
    body["authorizations"] = [acme.url("authz", a) for a in order.authz_ids]
    body["finalize"] = acme.url("order", order.id, "finalize")
    if order.profile:
        body["profile"] = order.profile
    if order.replaces:
        body["replaces"] = order.replaces
    if order.error and status == "invalid":
        body["error"] = order.error
    if order.certificate_serial and status == "valid":
        body["certificate"] = acme.url("cert", order.certificate_serial)
    return body


async def load_order(
    acme: Acme, signed: Signed, order_id: str, request: web.Request | None = None
) -> tuple[state.Order, str]:
    """The account's order and its effective status; with ``request``, read in the
    transaction that takes the request's nonce (:meth:`Acme.read`, a POST-as-GET)."""
    me = signed.require_account()
    if request is None:
        got = await acme.store.read(acme.repo.get_order, order_id)
    else:
        got = await acme.read(request, acme.repo.get_order, order_id)
    if got is None:
        raise Problem.malformed("no such order", 404)
    if got[0].account_id != me.id:
        raise Problem.unauthorized("this order belongs to another account")
    order, authzs = got
    return order, state.effective_order_status(order, authzs, acme.now())
