"""The MS-XCEP/MS-WSTEP front-end: CEP and CES routes and their TLS listeners (entry point
``wstep`` in group ``certgate.protocols``, through :mod:`protocols.wstep`)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from gateway.pkix import pem_chain
from gateway.plugin import Listener, ProtocolContext
from protocols.wstep.cep import CEPHandler
from protocols.wstep.ces import CESHandler
from protocols.wstep.listeners import Listeners
from protocols.wstep.numbers import RequestNumbers
from protocols.wstep.ports import Enrollment, Records, Templates, WstepContext
from protocols.wstep.settings import parse_settings, server_ssl_context
from protocols.wstep.users import PasswordVerifier

log = logging.getLogger("certgate.wstep")


class WSTEPFrontEnd:
    """The ``wstep`` entry point (group ``certgate.protocols``)."""

    name = "wstep"

    async def setup(self, context: ProtocolContext, app: Any) -> list[Listener]:
        settings = parse_settings(context.settings, context.config_file)
        # The composition of this front-end: the core objects, narrowed to its ports.
        service: Enrollment = context.service
        records: Records = context.store
        templates: Templates = context.policy
        core = WstepContext(service, records, templates, context.default_template)
        verifier = PasswordVerifier(context.transactions)
        ssl_context = None
        if settings.tls is not None:
            chain = await service.ca_chain()
            ssl_context = server_ssl_context(settings.tls, pem_chain(chain))
        if settings.allow_password_over_http:
            log.warning(
                "%s: wstep.allow_password_over_http = true: CES/CEP accept passwords over plain "
                "HTTP (only behind a TLS-terminating proxy or in tests)",
                context.config_file,
            )
        listeners = Listeners(context.external_url, settings, ssl_context)
        assert isinstance(app, web.Application)
        cep = CEPHandler(core, settings, verifier, listeners)
        ces = CESHandler(core, settings, verifier, listeners, RequestNumbers(context.transactions))
        app.router.add_post(settings.cep_path, cep.handle)
        app.router.add_post(settings.ces_path, ces.handle)
        if settings.tls is None or ssl_context is None:
            return []
        return [Listener("wstep-tls", settings.tls.host, settings.tls.port, ssl_context)]


FRONTEND = WSTEPFrontEnd()
