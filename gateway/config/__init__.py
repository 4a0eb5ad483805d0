"""Configuration: one TOML file -> frozen dataclasses, validated completely at start-up.

Every error is a :class:`gateway.errors.ConfigError` naming the file, the key path and the
reason: tables are read through :class:`gateway.toml_reader.Table` (re-exported here for the
front-ends' and connectors' own tables), durations in the one grammar of
:mod:`gateway.durations`. Secrets are never inlined: a secret-bearing key takes ``env:NAME`` or
``file:PATH``. ``[server]`` is read by :mod:`gateway.config.server`.
Tables for protocol front-ends (``[est]``, ``[acme]``, ``[scep]``, ``[wstep]``) are kept raw here
and validated by their packages when the composition root mounts them.
"""

from __future__ import annotations

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

from gateway.config.admin import AdminConfig, parse_admin
from gateway.config.ocsp import OcspConfig, parse_ocsp
from gateway.config.server import (
    PlainListenerConfig,
    ServerConfig,
    ServerTLSConfig,
    derived_url,
    parse_server,
)
from gateway.config.webhooks import WebhookConfig, WebhooksConfig, parse_webhooks
from gateway.errors import ConfigError
from gateway.toml_reader import Table

__all__ = [
    "DEFAULTS",
    "PROTOCOL_SECTIONS",
    "AdminConfig",
    "Config",
    "ConnectorConfig",
    "MetricsConfig",
    "OcspConfig",
    "PlainListenerConfig",
    "PollerConfig",
    "ServerConfig",
    "ServerTLSConfig",
    "Table",
    "TestingConfig",
    "WebhookConfig",
    "WebhooksConfig",
    "default_config_path",
    "derived_url",
    "load_config",
    "parse_config",
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
    """``[poller]``: seconds between rounds and the claim lease (:mod:`gateway.durations`,
    at least :data:`POLLER_MIN_INTERVAL` and :data:`POLLER_MIN_LEASE`)."""

    enabled: bool = True
    interval: int = 5
    lease: int = 60


@dataclass(frozen=True)
class TestingConfig:
    """Test-only switches; refused unless CERTGATE_TESTING=1 is in the environment."""

    enabled: bool = False
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
    #: ``[ocsp]`` (:mod:`gateway.config.ocsp`)
    ocsp: OcspConfig = field(default_factory=OcspConfig)
    #: ``[store] pool_size`` / ``max_overflow``: PostgreSQL's connection pool per process
    store_pool_size: int = 20
    store_max_overflow: int = 10
    admin: AdminConfig = field(default_factory=AdminConfig)
    protocols: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    #: ``[webhooks]`` (:mod:`gateway.config.webhooks`)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)


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


def parse_config(
    data: Mapping[str, Any], file: str, base: Path, *, data_dir: Path | None = None
) -> Config:
    """Validate a parsed TOML document. Relative paths are relative to ``base``."""
    root = Table(data, file)

    server = parse_server(root.table("server"), base)

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
    # PostgreSQL's pool per process: connections kept open, and extra ones opened at a peak and
    # closed when returned (a connection costs both sides far more than a statement, so the
    # kept ones should cover the steady concurrency).
    pool_size = store_t.int("pool_size", 20, minimum=1, maximum=1000)
    max_overflow = store_t.int("max_overflow", 10, minimum=0, maximum=1000)
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
        interval=poller_t.seconds("interval", "5s", minimum=POLLER_MIN_INTERVAL),
        lease=poller_t.seconds("lease", "60s", minimum=POLLER_MIN_LEASE),
    )
    poller_t.finish()

    testing_t = root.table("testing")
    testing = TestingConfig(
        enabled=testing_t.bool("enabled", False),
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
    ocsp = parse_ocsp(root.table("ocsp"), server)
    webhooks = parse_webhooks(root.table("webhooks"), resolve_secret)
    admin = parse_admin(root.table("admin"), base)

    protocols: dict[str, Mapping[str, Any]] = {}
    for name in PROTOCOL_SECTIONS:
        protocol_t = root.table(name)
        protocol_t.bool("enabled", False)  # `enabled = "yes"` must not silently mean off
        protocols[name] = dict(protocol_t.data)
    root.finish()

    return Config(
        file=file,
        data_dir=data_dir,
        server=server,
        store_url=store_url,
        store_pool_size=pool_size,
        store_max_overflow=max_overflow,
        templates_dir=templates_dir,
        default_template=default_template,
        connectors=MappingProxyType(connectors),
        poller=poller,
        testing=testing,
        log_level=level,
        log_format=log_format,
        metrics=metrics,
        ocsp=ocsp,
        admin=admin,
        protocols=MappingProxyType(protocols),
        webhooks=webhooks,
    )
