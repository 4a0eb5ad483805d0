"""``[server]``: the main listener, its TLS (``[server.tls]``) and the plain device listener
(``[server.plain]``), read through :class:`gateway.toml_reader.Table` like every other table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from gateway.durations import ZERO
from gateway.errors import ConfigError
from gateway.toml_reader import Table


@dataclass(frozen=True)
class ServerTLSConfig:
    """``[server.tls]``: the main listener's certificate and key from files, or (neither
    given) issued by the gateway's CA for ``names`` under ``template`` on first start and
    renewed before expiry (:mod:`gateway.server.tls`)."""

    certificate: Path | None = None
    key: Path | None = None
    names: tuple[str, ...] = ("localhost", "127.0.0.1")
    template: str = "tls-server"


@dataclass(frozen=True)
class PlainListenerConfig:
    """``[server.plain]``: a plain-HTTP listener beside a TLS main listener, serving only
    the paths devices and relying parties fetch without TLS (SCEP, ``/ca/*``)."""

    host: str
    port: int
    external_url: str
    external_url_configured: bool = False


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    external_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = 256 * 1024
    shutdown_timeout: int = 10
    #: seconds for a complete request head, from connect or a kept-alive request's first byte
    header_timeout: int = 10
    #: seconds for a complete request body, once its head is in
    body_timeout: int = 30
    access_log: bool = True
    #: False when external_url was derived from host and port (so --host/--port re-derive it)
    external_url_configured: bool = False
    #: TLS on the main listener (None: plain HTTP, as without ``[server.tls]``)
    tls: ServerTLSConfig | None = None
    #: the plain device listener beside a TLS main listener (``[server.plain]``)
    plain: PlainListenerConfig | None = None

    @property
    def ca_publication_url(self) -> str:
        """Base URL under which ``/ca/issuing.crt`` and ``/ca/crl`` are fetched (the default
        AIA and CRL distribution point URLs of the local CA's certificates): the plain device
        listener's when there is one, since relying parties fetch AIA and CRLs over HTTP."""
        return self.device_url

    @property
    def device_url(self) -> str:
        """Base URL of the paths devices fetch over plain HTTP (SCEP, CRL, AIA): the plain
        listener's when there is one, else the main listener's."""
        return (self.plain.external_url if self.plain else self.external_url).rstrip("/")

    def listening_on(self, host: str, port: int) -> ServerConfig:
        """This server configuration on another address (``certgate serve --host/--port``)."""
        url = (
            self.external_url
            if self.external_url_configured
            else derived_url(host, port, tls=self.tls is not None)
        )
        plain = self.plain
        if plain is not None and host != self.host:  # the device listener follows --host
            plain_url = (
                plain.external_url
                if plain.external_url_configured
                else derived_url(host, plain.port)
            )
            plain = dataclasses.replace(plain, host=host, external_url=plain_url)
        return dataclasses.replace(self, host=host, port=port, external_url=url, plain=plain)


def derived_url(host: str, port: int, *, tls: bool = False) -> str:
    """``http(s)://host:port``, with wildcard binds shown as localhost."""
    shown = {"0.0.0.0": "localhost", "::": "localhost"}.get(host, host)  # noqa: S104
    shown = f"[{shown}]" if ":" in shown else shown
    return f"{'https' if tls else 'http'}://{shown}:{port}"


#: ``[server.tls]`` not given at all (an empty table turns TLS on with the defaults).
_ABSENT: Mapping[str, Any] = MappingProxyType({})


def _absolute_url(url: str, file: str, key: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(file, key, "must be an absolute http(s) URL")


def _server_tls(t: Table, base: Path) -> ServerTLSConfig | None:
    """``[server.tls]``, or None when the table is absent (plain HTTP)."""
    if t.data is _ABSENT:
        return None
    cert, key = t.opt_str("certificate"), t.opt_str("key")
    if (cert is None) != (key is None):
        t.fail("key" if key is None else "certificate", "certificate and key go together")
    names = t.str_list("names", ServerTLSConfig.names)
    template = t.str("template", ServerTLSConfig.template)
    t.finish()
    if cert is None and not names:
        t.fail("names", "needed when certificate and key are not given")

    def path(value: str | None) -> Path | None:
        if value is None:
            return None
        return Path(value) if Path(value).is_absolute() else base / value

    return ServerTLSConfig(path(cert), path(key), names, template)


def _plain_listener(t: Table, main_host: str) -> PlainListenerConfig:
    host = t.str("host", main_host)
    port = t.int("port", 0, minimum=0, maximum=65535)
    if "port" not in t.data:
        t.fail("port", "required key is missing")
    url = t.str("external_url", "")
    t.finish()
    if url:
        _absolute_url(url, t.file, t.key("external_url"))
        if urlsplit(url).scheme != "http":
            t.fail("external_url", "the device listener speaks plain HTTP: use an http:// URL")
    return PlainListenerConfig(host, port, url or derived_url(host, port), bool(url))


def parse_server(server_t: Table, base: Path) -> ServerConfig:
    """Validate ``[server]`` (``server_t``); relative paths are relative to ``base``.
    ``header_timeout`` and ``body_timeout`` are at least one second; ``shutdown_timeout = "0s"``
    stops without waiting for requests in flight."""
    tls_data = server_t.raw("tls") if "tls" in server_t.data else _ABSENT
    tls = _server_tls(Table(tls_data, server_t.file, "server.tls"), base)
    server = ServerConfig(
        host=server_t.str("host", "127.0.0.1"),
        port=server_t.int("port", 8080, minimum=0, maximum=65535),
        external_url=server_t.str("external_url", ""),
        max_body_bytes=server_t.int("max_body_bytes", 256 * 1024, minimum=1024),
        shutdown_timeout=server_t.seconds("shutdown_timeout", "10s", minimum=ZERO),
        header_timeout=server_t.seconds("header_timeout", "10s"),
        body_timeout=server_t.seconds("body_timeout", "30s"),
        access_log=server_t.bool("access_log", True),
        tls=tls,
    )
    if server.external_url:
        server = dataclasses.replace(server, external_url_configured=True)
    else:
        url = derived_url(server.host, server.port, tls=tls is not None)
        server = dataclasses.replace(server, external_url=url)
    _absolute_url(server.external_url, server_t.file, "server.external_url")
    if "plain" in server_t.data:
        plain_t = server_t.table("plain")
        if tls is None:
            plain_t.fail("", "a plain device listener needs [server.tls] on the main listener")
        server = dataclasses.replace(server, plain=_plain_listener(plain_t, server.host))
    server_t.finish()
    return server
