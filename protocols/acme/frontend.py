"""The ACME front-end: routes on the server's app and the challenge sweeper (entry point
``acme`` in group ``certgate.protocols``, through :mod:`protocols.acme`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.plugin import Listener, ProtocolContext
from protocols.acme import account, authz, certificate, directory, finalize, order, revoke
from protocols.acme import tables as _tables  # noqa: F401  (declare the tables on metadata)
from protocols.acme.base import ACME, Acme, handler
from protocols.acme.messages import Problem
from protocols.acme.ports import AcmePorts
from protocols.acme.renewal_info import renewal_info
from protocols.acme.settings import parse_settings
from protocols.acme.validation import sweep

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


@handler
async def _method_not_allowed(acme: Acme, request: web.Request) -> web.Response:
    raise Problem.malformed("this resource only accepts POST (RFC 8555 §6.3)", 405)


def _post_only(route: Route) -> Route:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return await _method_not_allowed(request)
        return await route(request)

    return dispatch


class AcmeFrontEnd:
    name = "acme"

    async def setup(self, context: ProtocolContext, app: Any) -> list[Listener]:
        # The composition of this front-end: the core objects, narrowed to ACME's ports.
        ports = AcmePorts(
            service=context.service,
            records=context.store,
            templates=context.policy,
            clock=context.clock,
            transactions=context.transactions,
        )
        settings = parse_settings(
            context.settings,
            context.config_file,
            default_template=context.default_template,
            templates=ports.templates.templates,
            data_dir=context.data_dir,
        )
        acme = Acme(ports, settings, external_url=context.external_url, testing=context.testing)
        app[ACME] = acme
        r = app.router
        r.add_get("/acme/directory", directory.directory)
        r.add_get("/acme/{template}/directory", directory.directory)
        r.add_get("/acme/new-nonce", directory.new_nonce)  # GET and HEAD
        r.add_get("/acme/renewal-info/{cert_id}", renewal_info)
        r.add_get("/acme/terms", directory.terms)
        posts: list[tuple[str, Route]] = [
            ("/acme/new-account", account.new_account),
            ("/acme/acct/{id}", account.account),
            ("/acme/acct/{id}/orders", account.orders),
            ("/acme/key-change", account.key_change),
            ("/acme/new-order", order.new_order),
            ("/acme/{template}/new-order", order.new_order),
            ("/acme/order/{id}", order.order),
            ("/acme/order/{id}/finalize", finalize.finalize),
            ("/acme/authz/{id}", authz.authorization),
            ("/acme/chall/{id}", authz.challenge),
            ("/acme/cert/{serial}", certificate.certificate),
            ("/acme/cert/{serial}/{alt}", certificate.certificate),
            ("/acme/revoke-cert", revoke.revoke_cert),
        ]
        for path, route in posts:
            r.add_route("*", path, _post_only(route))

        async def background(app: web.Application) -> AsyncIterator[None]:
            stop = asyncio.Event()
            sweeper = asyncio.create_task(sweep(acme, stop), name="acme-challenge-sweep")
            yield
            stop.set()
            for task in (sweeper, *acme.tasks):
                task.cancel()
            for task in (sweeper, *acme.tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

        app.cleanup_ctx.append(background)
        return []


FRONTEND = AcmeFrontEnd()
