"""Wiring of the EST front-end: validate ``[est]``, provision the listener's certificate, build
its ``SSLContext``, add the routes, return the HTTPS listener (with its certificate, which the
server shell renews and reloads on SIGHUP)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.plugin import Listener, ProtocolContext
from protocols.est.context import EstContext
from protocols.est.ports import Clock, Enrollment, Records, Templates
from protocols.est.routes import add_routes, est_listener_only
from protocols.est.settings import parse_settings
from protocols.est.state import EstState
from protocols.est.tls import listener_certificate


class EstFrontEnd:
    """RFC 7030 EST (with RFC 8951 and RFC 9908) on its own mutual-TLS listener."""

    name = "est"

    async def setup(self, context: ProtocolContext, app: Any) -> list[Listener]:
        # The composition of this front-end: the core objects, narrowed to EST's ports.
        service: Enrollment = context.service
        records: Records = context.store
        templates: Templates = context.policy
        clock: Clock = context.clock
        settings = parse_settings(
            context.settings,
            context.config_file,
            context.default_template,
            templates.templates,
        )
        own_chain = await service.ca_chain()
        anchors = (*own_chain, *settings.all_anchors())
        certificate = listener_certificate(
            settings, service, context.data_dir, context.config_file, anchors
        )
        await certificate.start()
        ssl_context = certificate.context
        est = EstContext(
            settings=settings,
            service=service,
            store=records,
            policy=templates,
            clock=clock,
            state=EstState(context.transactions, clock.now),
            own_chain=own_chain,
        )
        if not isinstance(app, web.Application):
            raise TypeError("the EST front-end needs an aiohttp application")
        add_routes(app, est)
        app.middlewares.append(est_listener_only(ssl_context))
        return [Listener("est", settings.host, settings.port, ssl_context, certificate)]
