"""MS-XCEP (CEP) and MS-WSTEP (CES) front-end: Windows and other CES clients enroll against
certgate's templates.

Module map, in reading order:

* :mod:`.settings`   -- the ``[wstep]`` table;
* :mod:`.transport`  -- bounded SOAP 1.2 request reading, fault responses;
* :mod:`.auth`       -- UsernameToken / TLS client certificate -> Requester;
* :mod:`.users`      -- password accounts (``certgate wstep user ...``), :mod:`.tables`;
* :mod:`.errors`     -- the one ErrorCode/denial -> SOAP fault (HRESULT) mapping;
* :mod:`.policies`   -- templates as XCEP policies; :mod:`.cep` the GetPolicies endpoint;
* :mod:`.ces`        -- the RequestSecurityToken endpoint (Issue, QueryTokenStatus).

Wire codecs live in the core (:mod:`gateway.wstep_messages`, :mod:`gateway.xcep_messages`,
:mod:`gateway.pkix.wstep_cms`) because the ``ms_ces`` connector speaks the same messages.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import ConfigError
from gateway.pkix import pem_chain
from gateway.plugin import Listener, ProtocolContext
from protocols.wstep.cep import CEPHandler
from protocols.wstep.ces import CESHandler
from protocols.wstep.settings import parse_settings, server_ssl_context
from protocols.wstep.users import PasswordVerifier, SQLRunner


class WSTEPFrontEnd:
    """The ``wstep`` entry point (group ``certgate.protocols``)."""

    name = "wstep"

    async def setup(self, context: ProtocolContext, app: Any) -> list[Listener]:
        settings = parse_settings(context.settings, context.config_file)
        store = context.store
        if not isinstance(store, SQLRunner):
            raise ConfigError(context.config_file, "wstep", "needs the SQL store")
        verifier = PasswordVerifier(store)
        assert isinstance(app, web.Application)
        app.router.add_post(settings.cep_path, CEPHandler(context, settings, verifier).handle)
        app.router.add_post(settings.ces_path, CESHandler(context, settings, verifier).handle)
        if settings.tls is None:
            return []
        chain = await context.service.ca_chain()
        ssl_context = server_ssl_context(settings.tls, pem_chain(chain))
        return [Listener("wstep-tls", settings.tls.host, settings.tls.port, ssl_context)]


FRONTEND = WSTEPFrontEnd()
