"""The CES connector's ``[connectors.<name>]`` table, validated completely in the constructor.

Every problem is a :class:`gateway.errors.ConfigError` naming ``connectors.<name>.<key>``.
Secrets (``password``) are ``env:``/``file:`` references resolved with
:func:`gateway.config.resolve_secret` and kept out of ``repr``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.config import Table, resolve_secret
from gateway.errors import ConfigError


class AuthMode(enum.StrEnum):
    """CES endpoint authentication (MS-XCEP ``clientAuthentication``)."""

    USERNAME = "username"  # 4: WS-Security UsernameToken, message level, over HTTPS
    CERTIFICATE = "certificate"  # 8: TLS client certificate
    KERBEROS = "kerberos"  # 2: HTTP Negotiate (SPNEGO), needs the `kerberos` extra


@dataclass(frozen=True)
class CESSettings:
    """Validated settings of one CES connector."""

    name: str
    config_file: str
    url: str
    auth: AuthMode
    policy_url: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_certificate: Path | None = None
    client_key: Path | None = None
    ca_bundle: Path | None = None
    issuer_chain: Path | None = None
    kerberos_service: str = "HTTP"
    timeout: float = 30.0
    retry_after: int = 60
    pool_size: int = 10
    send_request_id: bool = True
    allow_http: bool = False

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.config_file, f"connectors.{self.name}.{key}", reason)


def parse_settings(name: str, data: Mapping[str, Any], config_file: str) -> CESSettings:
    """Validate ``[connectors.<name>]`` for ``type = "ms_ces"``."""
    t = Table({k: v for k, v in data.items() if k != "type"}, config_file, f"connectors.{name}")
    allow_http = t.bool("allow_http", False)
    url = _url(t, "url", allow_http, required=True)
    assert url is not None
    policy_url = _url(t, "policy_url", allow_http, required=False)
    auth_text = t.str("auth", AuthMode.USERNAME.value)
    try:
        auth = AuthMode(auth_text)
    except ValueError:
        choices = ", ".join(m.value for m in AuthMode)
        raise ConfigError(config_file, t.key("auth"), f"expected one of {choices}") from None
    base = Path(config_file).resolve().parent if config_file != "<defaults>" else Path.cwd()

    def path(key: str) -> Path | None:
        value = t.opt_str(key)
        if value is None:
            return None
        p = Path(value)
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise ConfigError(config_file, t.key(key), f"no such file: {p}")
        return p

    password_ref = t.raw("password")
    password = (
        None
        if password_ref is None
        else resolve_secret(password_ref, config_file, t.key("password"))
    )
    settings = CESSettings(
        name=name,
        config_file=config_file,
        url=url,
        auth=auth,
        policy_url=policy_url,
        username=t.opt_str("username"),
        password=password,
        client_certificate=path("client_certificate"),
        client_key=path("client_key"),
        ca_bundle=path("ca_bundle"),
        issuer_chain=path("issuer_chain"),
        kerberos_service=t.str("kerberos_service", "HTTP"),
        timeout=float(t.seconds("timeout", "30s") or 1),
        retry_after=t.seconds("retry_after", "60s") or 1,
        pool_size=t.int("pool_size", 10, minimum=1),
        send_request_id=t.bool("send_request_id", True),
        allow_http=allow_http,
    )
    t.finish()
    if auth is AuthMode.USERNAME and (not settings.username or not settings.password):
        raise settings.error("username", 'auth = "username" needs username and password')
    if auth is AuthMode.CERTIFICATE and (
        not settings.client_certificate or not settings.client_key
    ):
        raise settings.error(
            "client_certificate", 'auth = "certificate" needs client_certificate and client_key'
        )
    if settings.issuer_chain is None and settings.policy_url is None:
        raise settings.error(
            "issuer_chain", "give issuer_chain (PEM), or policy_url to learn the CA from CEP"
        )
    return settings


def _url(t: Table, key: str, allow_http: bool, *, required: bool) -> str | None:
    value = t.str(key) if required else t.opt_str(key)
    if value is None:
        return None
    parts = urlsplit(value)
    schemes = {"https", "http"} if allow_http else {"https"}
    if parts.scheme not in schemes or not parts.hostname:
        hint = "" if allow_http else " (http:// only with allow_http = true, for tests)"
        raise ConfigError(t.file, t.key(key), f"expected an https:// URL{hint}, got {value!r}")
    return value
