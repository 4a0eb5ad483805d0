"""Wiring of the EST front-end: validate ``[est]``, provision the listener's certificate, build
its ``SSLContext``, add the routes, return the HTTPS listener."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web

from gateway.errors import ConfigError
from gateway.plugin import Listener, ProtocolContext
from protocols.est.context import EstContext
from protocols.est.routes import add_routes, est_listener_only
from protocols.est.settings import parse_settings
from protocols.est.state import EstState, StateStore
from protocols.est.tls import server_context, server_credentials


class EstFrontEnd:
    """RFC 7030 EST (with RFC 8951 and RFC 9908) on its own mutual-TLS listener."""

    name = "est"

    async def setup(self, context: ProtocolContext, app: Any) -> list[Listener]:
        settings = parse_settings(
            context.settings,
            context.config_file,
            context.default_template,
            context.policy.templates,
        )
        store = context.store
        if not (hasattr(store, "read") and hasattr(store, "write")):
            raise ConfigError(context.config_file, "est", "the store cannot hold EST state")
        own_chain = await context.service.ca_chain()
        cert_path, key_path = await server_credentials(settings, context)
        anchors = (*own_chain, *settings.all_anchors())
        ssl_context = server_context(cert_path, key_path, anchors)
        est = EstContext(
            settings=settings,
            service=context.service,
            store=store,
            policy=context.policy,
            state=EstState(cast(StateStore, store), context.service.clock.now),
            own_chain=own_chain,
        )
        if not isinstance(app, web.Application):
            raise TypeError("the EST front-end needs an aiohttp application")
        add_routes(app, est)
        app.middlewares.append(est_listener_only(ssl_context))
        return [Listener("est", settings.host, settings.port, ssl_context)]
