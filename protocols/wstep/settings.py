"""The ``[wstep]`` table: the MS-XCEP/MS-WSTEP front-end's settings, validated at start-up.

Every problem is a :class:`gateway.errors.ConfigError` naming ``wstep.<key>``.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import Table
from gateway.errors import ConfigError

_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
AUTH_METHODS = frozenset({"username", "certificate"})


@dataclass(frozen=True)
class TLSListenerSettings:
    """An extra HTTPS listener: needed for client-certificate authentication."""

    host: str
    port: int
    certificate: Path
    key: Path
    client_ca: Path | None
    external_url: str


@dataclass(frozen=True)
class WSTEPSettings:
    """Validated ``[wstep]`` settings (defaults as in ``conf/certgate.toml``)."""

    path: str = "/wstep"
    max_body_bytes: int = 65536
    read_timeout: int = 10
    friendly_name: str = "certgate"
    next_update_hours: int = 8
    auth: frozenset[str] = AUTH_METHODS
    tls: TLSListenerSettings | None = None
    #: Accept a UsernameToken (a clear-text password) over plain HTTP: only behind a
    #: TLS-terminating proxy or in tests. Off: such a request is refused with a fault.
    allow_password_over_http: bool = False

    @property
    def cep_path(self) -> str:
        return f"{self.path}/CEP"

    @property
    def ces_path(self) -> str:
        return f"{self.path}/CES"


def parse_settings(data: Mapping[str, Any], file: str) -> WSTEPSettings:
    """Validate the ``[wstep]`` table."""
    t = Table(data, file, "wstep")
    t.bool("enabled", False)
    path = t.str("path", "/wstep").rstrip("/")
    if not _PATH.match(path):
        raise ConfigError(file, "wstep.path", f"expected an absolute URL path, got {path!r}")
    auth = t.str_list("auth", tuple(sorted(AUTH_METHODS)))
    unknown = set(auth) - AUTH_METHODS
    if unknown or not auth:
        raise ConfigError(
            file, "wstep.auth", f"expected a non-empty subset of {sorted(AUTH_METHODS)}"
        )
    settings = WSTEPSettings(
        path=path,
        max_body_bytes=t.int("max_body_bytes", 65536, minimum=1024),
        read_timeout=t.seconds("read_timeout", "10s"),
        friendly_name=t.str("friendly_name", "certgate"),
        next_update_hours=t.int("next_update_hours", 8, minimum=1),
        auth=frozenset(auth),
        tls=_tls(t.table("tls"), file),
        allow_password_over_http=t.bool("allow_password_over_http", False),
    )
    t.finish()
    return settings


def _tls(t: Table, file: str) -> TLSListenerSettings | None:
    if not t.data:
        t.finish()
        return None
    host = t.str("host", "127.0.0.1")
    port = t.int("port", 0, minimum=1)
    if port > 65535:
        raise ConfigError(file, t.key("port"), "must be a TCP port")
    base = Path(file).resolve().parent

    def file_key(name: str, required: bool) -> Path | None:
        value = t.opt_str(name)
        if value is None:
            if required:
                raise ConfigError(file, t.key(name), "is required")
            return None
        p = Path(value)
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise ConfigError(file, t.key(name), f"no such file: {p}")
        return p

    certificate = file_key("certificate", True)
    key = file_key("key", True)
    client_ca = file_key("client_ca", False)
    shown = f"[{host}]" if ":" in host else host
    external = t.str("external_url", f"https://{shown}:{port}").rstrip("/")
    t.finish()
    assert certificate is not None and key is not None
    listener = TLSListenerSettings(host, port, certificate, key, client_ca, external)
    try:
        server_ssl_context(listener, None)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(file, t.key("certificate"), f"cannot load: {exc}") from None
    return listener


def server_ssl_context(listener: TLSListenerSettings, ca_pem: bytes | None) -> ssl.SSLContext:
    """TLS 1.2+ server context that asks for (but does not require) a client certificate,
    trusting ``client_ca`` or else ``ca_pem`` (the gateway's own CA chain)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(listener.certificate), str(listener.key))
    if listener.client_ca is not None:
        context.load_verify_locations(cafile=str(listener.client_ca))
        context.verify_mode = ssl.CERT_OPTIONAL
    elif ca_pem:
        context.load_verify_locations(cadata=ca_pem.decode("ascii"))
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
