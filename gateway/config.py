"""Configuration: one TOML file -> frozen dataclasses, validated completely at start-up.

Every error is a :class:`gateway.errors.ConfigError` naming the file, the key path and the
reason: tables are read through :class:`gateway.toml_reader.Table` (re-exported here with
:func:`parse_seconds` for the front-ends' and connectors' own tables). Secrets are never
inlined: a secret-bearing key takes ``env:NAME`` or ``file:PATH``.
Tables for protocol front-ends (``[est]``, ``[acme]``, ``[scep]``, ``[wstep]``) are kept raw here
and validated by their packages when the composition root mounts them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from gateway.errors import ConfigError
from gateway.policy.durations import parse_duration
from gateway.toml_reader import Table, describe, parse_seconds

__all__ = [
    "DEFAULTS",
    "PROTOCOL_SECTIONS",
    "Config",
    "ConnectorConfig",
    "MetricsConfig",
    "PlainListenerConfig",
    "PollerConfig",
    "ServerConfig",
    "ServerTLSConfig",
    "Table",
    "TestingConfig",
    "default_config_path",
    "derived_url",
    "load_config",
    "parse_config",
    "parse_seconds",
    "resolve_secret",
]

PROTOCOL_SECTIONS = ("est", "acme", "scep", "wstep")
#: ``Config.file`` when no file was read.
DEFAULTS = "<defaults>"


def resolve_secret(reference: object, file: str, key: str) -> str:
    """Resolve ``env:NAME`` or ``file:PATH`` (relative to the config file's directory).

    Inline secrets are refused so that a configuration file can be shared and logged safely.
    """
    if not isinstance(reference, str) or not reference.startswith(("env:", "file:")):
        raise ConfigError(file, key, "secrets must be given as 'env:VARIABLE' or 'file:PATH'")
    kind, _, target = reference.partition(":")
    if not target:
        raise ConfigError(file, key, f"empty {kind}: reference")
    if kind == "env":
        value = os.environ.get(target)
        if value is None:
            raise ConfigError(file, key, f"environment variable {target} is not set")
        return value
    path = Path(target)
    if not path.is_absolute():
        path = Path(file).resolve().parent / path
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(file, key, f"cannot read secret file {path}: {exc.strerror}") from None


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


@dataclass(frozen=True)
class ConnectorConfig:
    name: str
    type: str
    settings: Mapping[str, Any]


#: A poller round at most once a second: "0s" would make it spin.
POLLER_MIN_INTERVAL = timedelta(seconds=1)
#: A claimed request's lease: with none, every instance would re-submit a request another one
#: is submitting. Production leases should outlast the slowest CA call (60s by default).
POLLER_MIN_LEASE = timedelta(seconds=2)


@dataclass(frozen=True)
class PollerConfig:
    """``[poller]``: seconds between rounds and the claim lease (durations in the template
    grammar, :func:`gateway.policy.durations.parse_duration`)."""

    enabled: bool = True
    interval: int = 5
    lease: int = 60


@dataclass(frozen=True)
class TestingConfig:
    """Test-only switches; refused unless CERTGATE_TESTING=1 is in the environment."""

    enabled: bool = False
    #: die (os._exit) after the CA answered and before the outcome is stored (crash safety)
    crash_after_ca_submit: bool = False
    #: ACME challenges are valid without being fetched (benchmarks, like PEBBLE_VA_ALWAYS_VALID)
    acme_always_valid: bool = False


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: ``GET /metrics`` on the main listener, open to any peer unless ``allow``
    lists networks (:mod:`gateway.server.metrics`)."""

    enabled: bool = True
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


def _metrics(t: Table) -> MetricsConfig:
    allow = []
    for key, text in t.str_items("allow"):
        try:
            allow.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            t.fail(key, f"{text!r} is not an IP address or network (e.g. '10.0.0.0/8')")
    config = MetricsConfig(enabled=t.bool("enabled", True), allow=tuple(allow))
    t.finish()
    return config


@dataclass(frozen=True)
class Config:
    file: str
    data_dir: Path
    server: ServerConfig
    store_url: str | None
    templates_dir: Path
    default_template: str
    connectors: Mapping[str, ConnectorConfig]
    poller: PollerConfig
    testing: TestingConfig
    log_level: str = "INFO"
    #: ``[logging] format``: "text" or "json" (one JSON object per line)
    log_format: str = "text"
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    protocols: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))


def _duration(table: Table, key: str, default: str, minimum: timedelta) -> int:
    """``key`` as whole seconds: a string in the template duration grammar, at least
    ``minimum``."""
    value = table.raw(key)
    if value is None:
        value = default
    if not isinstance(value, str):
        table.fail(key, f"expected a duration like '{default}', got {describe(value)}")
    try:
        return int(parse_duration(value, minimum).total_seconds())
    except ValueError as exc:
        table.fail(key, str(exc))


def default_config_path() -> Path | None:
    """``$CERTGATE_CONFIG``, else ``./conf/certgate.toml`` if present, else built-in defaults."""
    env = os.environ.get("CERTGATE_CONFIG")
    if env:
        return Path(env)
    candidate = Path("conf/certgate.toml")
    return candidate if candidate.exists() else None


def load_config(path: Path | None, *, data_dir: Path | None = None) -> Config:
    """Read and validate the configuration. ``data_dir`` (e.g. from ``--data``) wins over
    ``$CERTGATE_DATA``, which wins over ``[data] dir``."""
    if path is None:
        return parse_config({}, DEFAULTS, Path.cwd(), data_dir=data_dir)
    file = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(file, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8 text (TOML 1.0 "Spec")
        raise ConfigError(
            file, "", f"not a TOML file: not UTF-8 text (byte {exc.start} is invalid)"
        ) from None
    return parse_config(data, file, path.resolve().parent, data_dir=data_dir)


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


def parse_config(
    data: Mapping[str, Any], file: str, base: Path, *, data_dir: Path | None = None
) -> Config:
    """Validate a parsed TOML document. Relative paths are relative to ``base``."""
    root = Table(data, file)

    server_t = root.table("server")
    tls_data = server_t.raw("tls") if "tls" in server_t.data else _ABSENT
    tls = _server_tls(Table(tls_data, file, "server.tls"), base)
    server = ServerConfig(
        host=server_t.str("host", "127.0.0.1"),
        port=server_t.int("port", 8080, minimum=0, maximum=65535),
        external_url=server_t.str("external_url", ""),
        max_body_bytes=server_t.int("max_body_bytes", 256 * 1024, minimum=1024),
        shutdown_timeout=server_t.seconds("shutdown_timeout", "10s"),
        header_timeout=server_t.seconds("header_timeout", "10s") or 1,
        body_timeout=server_t.seconds("body_timeout", "30s") or 1,
        access_log=server_t.bool("access_log", True),
        tls=tls,
    )
    if server.external_url:
        server = dataclasses.replace(server, external_url_configured=True)
    else:
        url = derived_url(server.host, server.port, tls=tls is not None)
        server = dataclasses.replace(server, external_url=url)
    _absolute_url(server.external_url, file, "server.external_url")
    if "plain" in server_t.data:
        plain_t = server_t.table("plain")
        if tls is None:
            plain_t.fail("", "a plain device listener needs [server.tls] on the main listener")
        server = dataclasses.replace(server, plain=_plain_listener(plain_t, server.host))
    server_t.finish()

    data_t = root.table("data")
    configured_dir = data_t.opt_str("dir")
    data_t.finish()
    if data_dir is None:
        env_dir = os.environ.get("CERTGATE_DATA")
        if env_dir:
            data_dir = Path(env_dir)
        elif configured_dir:
            data_dir = (
                Path(configured_dir)
                if Path(configured_dir).is_absolute()
                else (base / configured_dir)
            )
        else:
            data_dir = Path(".certgate")
    data_dir = data_dir.absolute()

    store_t = root.table("store")
    url_ref = store_t.opt_str("url")
    store_url = None
    if url_ref:
        store_url = (
            resolve_secret(url_ref, file, "store.url")
            if url_ref.startswith(("env:", "file:"))
            else url_ref
        )
        if not store_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ConfigError(
                file, "store.url", "must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        if urlsplit(store_url).password and not url_ref.startswith(("env:", "file:")):
            raise ConfigError(
                file, "store.url", "a URL with a password is a secret: use env: or file:"
            )
    store_t.finish()

    policy_t = root.table("policy")
    templates_dir = Path(policy_t.str("templates_dir", "templates"))
    if not templates_dir.is_absolute():
        templates_dir = base / templates_dir
    default_template = policy_t.str("default_template", "tls-server")
    policy_t.finish()

    connectors: dict[str, ConnectorConfig] = {}
    conn_t = root.table("connectors")
    for name in conn_t.data:
        settings = dict(conn_t.table(name).data)
        kind = settings.pop("type", "local")
        if not isinstance(kind, str):
            raise ConfigError(file, f"connectors.{name}.type", "expected a string")
        connectors[name] = ConnectorConfig(name, kind, MappingProxyType(settings))
    conn_t.finish()
    if not connectors:
        connectors["local"] = ConnectorConfig("local", "local", MappingProxyType({}))

    poller_t = root.table("poller")
    poller = PollerConfig(
        enabled=poller_t.bool("enabled", True),
        interval=_duration(poller_t, "interval", "5s", POLLER_MIN_INTERVAL),
        lease=_duration(poller_t, "lease", "60s", POLLER_MIN_LEASE),
    )
    poller_t.finish()

    testing_t = root.table("testing")
    testing = TestingConfig(
        enabled=testing_t.bool("enabled", False),
        crash_after_ca_submit=testing_t.bool("crash_after_ca_submit", False),
        acme_always_valid=testing_t.bool("acme_always_valid", False),
    )
    testing_t.finish()
    if testing != TestingConfig() and os.environ.get("CERTGATE_TESTING") != "1":
        raise ConfigError(
            file, "testing", "test-only switches are refused unless CERTGATE_TESTING=1 is set"
        )
    if testing != TestingConfig(enabled=testing.enabled) and not testing.enabled:
        raise ConfigError(file, "testing.enabled", "must be true to use test-only switches")

    log_t = root.table("logging")
    level = log_t.str("level", "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(file, "logging.level", "must be DEBUG, INFO, WARNING or ERROR")
    log_format = log_t.str("format", "text")
    if log_format not in ("text", "json"):
        log_t.fail("format", f"must be 'text' or 'json', not {log_format!r}")
    log_t.finish()
    metrics = _metrics(root.table("metrics"))

    protocols = {name: dict(root.table(name).data) for name in PROTOCOL_SECTIONS}
    root.finish()

    return Config(
        file=file,
        data_dir=data_dir,
        server=server,
        store_url=store_url,
        templates_dir=templates_dir,
        default_template=default_template,
        connectors=MappingProxyType(connectors),
        poller=poller,
        testing=testing,
        log_level=level,
        log_format=log_format,
        metrics=metrics,
        protocols=MappingProxyType(protocols),
    )
