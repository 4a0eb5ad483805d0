"""Which listener a CEP/CES request arrived on, and which CES endpoints to publish from it.

MS-XCEP §3.1.4.1.3.4 (``CAURI``): each CES URI carries its ``clientAuthentication`` method.
A UsernamePassword endpoint sends the password in clear inside the SOAP header (WS-Security
UsernameToken profile 1.0 §4, PasswordText), so it is published only as the https URL of a TLS
listener; a Certificate endpoint needs a listener that asks for client certificates. TLS-ness
is read from the connection itself (the socket's SSL context), never from a header, and URLs
come from configuration (``[server] external_url``, ``[wstep.tls] external_url``), never from
the Host header.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from aiohttp import web

from gateway.codecs.ms.xcep import AUTH_CERTIFICATE, AUTH_USERNAME
from protocols.wstep.settings import WSTEPSettings


@dataclass(frozen=True)
class Arrival:
    """The listener a request came in on: its external base URL, whether the connection is
    TLS, and whether that listener asks for client certificates."""

    base_url: str
    tls: bool
    asks_client_certs: bool


@dataclass(frozen=True)
class Listeners:
    """The main listener's URL and the front-end's own TLS listener (``[wstep.tls]``)."""

    main_url: str
    settings: WSTEPSettings
    tls_context: ssl.SSLContext | None = None

    def arrival(self, request: web.Request) -> Arrival:
        transport = request.transport
        context = transport.get_extra_info("sslcontext") if transport is not None else None
        if not isinstance(context, ssl.SSLContext):
            return Arrival(self.main_url, tls=False, asks_client_certs=False)
        asks = context.verify_mode != ssl.CERT_NONE
        if self.settings.tls is not None and context is self.tls_context:
            return Arrival(self.settings.tls.external_url, tls=True, asks_client_certs=asks)
        return Arrival(self.main_url, tls=True, asks_client_certs=asks)

    def ces_url(self, request: web.Request) -> str:
        """The CES URL on the listener ``request`` came in on (where a pending request is
        polled: the same endpoint, so the same authentication)."""
        return self.arrival(request).base_url + self.settings.ces_path

    def ces_uris(self, request: web.Request) -> list[tuple[int, str]]:
        """(clientAuthentication, URI) pairs for GetPolicies, preferring the listener the
        request came in on: username/password only on a TLS listener (or on the main URL when
        ``allow_password_over_http`` says a TLS-terminating proxy is in front), certificates
        only on a listener that asks for client certificates."""
        here = self.arrival(request)
        ces = self.settings.ces_path
        tls = self.settings.tls
        uris: list[tuple[int, str]] = []
        if "username" in self.settings.auth:
            if here.tls or self.settings.allow_password_over_http:
                uris.append((AUTH_USERNAME, here.base_url + ces))
            elif tls is not None:
                uris.append((AUTH_USERNAME, tls.external_url + ces))
        if "certificate" in self.settings.auth:
            if here.asks_client_certs:
                uris.append((AUTH_CERTIFICATE, here.base_url + ces))
            elif tls is not None and self.tls_context is not None:
                if self.tls_context.verify_mode != ssl.CERT_NONE:
                    uris.append((AUTH_CERTIFICATE, tls.external_url + ces))
        return uris
