"""SOAP 1.2 over HTTPS to a CES/CEP server: one pooled aiohttp session per connector.

IIS/WCF refuse chunked request bodies (protocols.md 4.6), so every body is sent as bytes with a
``Content-Length``. Authentication per :class:`backends.ms_ces.settings.AuthMode`: the
UsernameToken is added by the caller (it is part of the SOAP header); a client certificate goes
into the TLS context; Kerberos adds an ``Authorization: Negotiate`` header from pyspnego.

Failures are classified once here: connection errors, timeouts and 5xx answers without a SOAP
body are transient (:class:`CAUnavailable` with the configured retry hint); 401/403/404 and
other non-SOAP answers are permanent (:class:`ConnectorError`): retrying will not fix a wrong
password or URL.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import ssl
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from backends.ms_ces.settings import AuthMode, CESSettings
from gateway.codecs.ms.wstrust import SOAP_CONTENT_TYPE
from gateway.errors import CAUnavailable, ConfigError, ConnectorError

#: Largest answer read from a CES server (a response with a long chain is a few dozen KiB).
MAX_RESPONSE_BYTES = 1024 * 1024


def client_ssl_context(settings: CESSettings) -> ssl.SSLContext:
    """TLS trust from ``ca_bundle`` (else the system store) and the client certificate."""
    context = ssl.create_default_context(
        cafile=str(settings.ca_bundle) if settings.ca_bundle else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.auth is AuthMode.CERTIFICATE:
        assert settings.client_certificate is not None and settings.client_key is not None
        try:
            context.load_cert_chain(str(settings.client_certificate), str(settings.client_key))
        except (OSError, ssl.SSLError) as exc:
            raise settings.error("client_certificate", f"cannot load: {exc}") from None
    return context


class SOAPClient:
    """POSTs SOAP envelopes and returns ``(status, body)`` for SOAP answers."""

    def __init__(self, settings: CESSettings) -> None:
        self.settings = settings
        self._ssl = client_ssl_context(settings)
        self._session: aiohttp.ClientSession | None = None
        self._spnego: Any = None
        if settings.auth is AuthMode.KERBEROS:
            try:
                self._spnego = importlib.import_module("spnego")  # the `kerberos` extra
            except ImportError:
                raise ConfigError(
                    settings.config_file,
                    f"connectors.{settings.name}.auth",
                    "kerberos needs pyspnego: pip install 'certgate[kerberos]'",
                ) from None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.settings.pool_size, ssl=self._ssl, enable_cleanup_closed=True
                ),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _negotiate_header(self, url: str) -> str:
        """One SPNEGO token for ``HTTP@host`` (RFC 4559 §4)."""
        host = urlsplit(url).hostname or ""
        ctx = self._spnego.client(
            hostname=host, service=self.settings.kerberos_service, protocol="negotiate"
        )
        token = ctx.step()
        if not token:
            raise ConnectorError("Kerberos produced no SPNEGO token")
        return "Negotiate " + base64.b64encode(token).decode("ascii")

    async def post(self, url: str, action: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body``; the answer when it is SOAP (any status), else an exception."""
        headers = {"Content-Type": f'{SOAP_CONTENT_TYPE}; action="{action}"'}
        if self.settings.auth is AuthMode.KERBEROS:
            try:
                # libkrb5 may talk to the KDC (blocking, with its own retries): keep that off
                # the event loop, and bounded, so an unreachable KDC never stalls the gateway.
                headers["Authorization"] = await asyncio.wait_for(
                    asyncio.to_thread(self._negotiate_header, url), self.settings.timeout
                )
            except ConnectorError:
                raise
            except Exception as exc:  # no ticket, no KDC, KDC timeout: transient for the caller
                raise CAUnavailable(
                    f"Kerberos authentication failed ({type(exc).__name__})",
                    self.settings.retry_after,
                ) from None
        retry = self.settings.retry_after
        try:
            async with self._open().post(url, data=body, headers=headers) as response:
                data = await response.content.read(MAX_RESPONSE_BYTES + 1)
                status = response.status
                media = response.content_type
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise CAUnavailable(
                f"CES server {_host(url)} unreachable ({type(exc).__name__})", retry
            ) from None
        except asyncio.CancelledError:
            raise
        if len(data) > MAX_RESPONSE_BYTES:
            raise ConnectorError(f"CES server {_host(url)} sent more than 1 MiB")
        if media in {"application/soap+xml", "text/xml"} and data:
            return status, data
        if status in {401, 403}:
            raise ConnectorError(f"CES server {_host(url)} refused our credentials (HTTP {status})")
        if status >= 500 or status == 429:
            raise CAUnavailable(f"CES server {_host(url)} answered HTTP {status}", retry)
        raise ConnectorError(f"CES server {_host(url)} answered HTTP {status} without SOAP")


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
