"""MS-XCEP (CEP) and MS-WSTEP (CES) front-end: Windows and other CES clients enroll against
certgate's templates.

Module map, in reading order:

* :mod:`.settings`   -- the ``[wstep]`` table;
* :mod:`.transport`  -- bounded SOAP 1.2 request reading, fault responses;
* :mod:`.auth`       -- UsernameToken / TLS client certificate -> Requester;
* :mod:`.users`      -- password accounts (``certgate wstep user ...``), :mod:`.tables`;
* :mod:`.numbers`    -- the numeric request ids CES clients see (``wstep:RequestID``);
* :mod:`.listeners`  -- which listener a request came in on, the CES URIs to publish;
* :mod:`.errors`     -- the one ErrorCode/denial -> SOAP fault (HRESULT) mapping;
* :mod:`.policies`   -- templates as XCEP policies; :mod:`.cep` the GetPolicies endpoint;
* :mod:`.ces`        -- the RequestSecurityToken endpoint (Issue, QueryTokenStatus).

The wire codecs are in :mod:`gateway.codecs.ms` (SOAP, WS-Trust, XCEP, HRESULTs, the CES CMS
helpers) because the ``ms_ces`` connector speaks the same messages.
"""

from __future__ import annotations

__all__ = ["FRONTEND", "WSTEPFrontEnd"]


def __getattr__(name: str) -> object:
    # PEP 562: the front-end, and with it the web stack, is imported when the server asks for
    # it by entry point, not when ``certgate --help`` imports this package's command tree.
    if name == "FRONTEND" or name == "WSTEPFrontEnd":
        from protocols.wstep import frontend

        return getattr(frontend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
