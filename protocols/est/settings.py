"""The ``[est]`` configuration table, validated completely at start-up.

Every error is a :class:`gateway.errors.ConfigError` naming ``est.<key>``. Label sections
(``[est.labels.<label>]``) inherit ``auth``, ``trust_anchors``, ``require_pop_link``,
``groups`` and ``csrattrs`` from ``[est]`` unless they set them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.config import Table
from gateway.errors import ConfigError
from protocols.est.messages import OPERATIONS_WITH_CSRATTRS

AUTH_METHODS = ("tls-client-cert", "basic")
#: The trust-anchor name for the gateway's own CA chain.
OWN_CA = "certgate"
_SHA256 = hashes.SHA256()
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class LabelSettings:
    """One CA label (RFC 7030 §3.2.2) -> template, accepted authentication, trust anchors.

    ``label`` is ``""`` for the unlabelled ``/.well-known/est/<op>`` paths. ``anchors`` are
    the extra (non-certgate) CA certificates a client certificate may chain to; ``own_ca``
    says whether the gateway's own CA is one of the anchors.
    """

    label: str
    template: str
    auth: tuple[str, ...]
    own_ca: bool
    anchors: tuple[x509.Certificate, ...]
    require_pop_link: bool
    groups: frozenset[str]
    csrattrs: bool


@dataclass(frozen=True)
class EstSettings:
    host: str
    port: int
    tls_certificate: Path | None
    tls_key: Path | None
    server_names: tuple[str, ...]
    server_template: str
    realm: str
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    client_cert_header: str
    retry_window: int
    max_body_bytes: int
    send_cte_header: bool
    default: LabelSettings
    labels: Mapping[str, LabelSettings]

    def label(self, name: str) -> LabelSettings | None:
        return self.default if not name else self.labels.get(name)

    def all_anchors(self) -> tuple[x509.Certificate, ...]:
        seen: dict[bytes, x509.Certificate] = {}
        for settings in (self.default, *self.labels.values()):
            for cert in settings.anchors:
                seen[cert.fingerprint(_SHA256)] = cert
        return tuple(seen.values())

    def trusts_proxy(self, address: str | None) -> bool:
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)


def parse_settings(
    raw: Mapping[str, Any], file: str, default_template: str, templates: Mapping[str, Any]
) -> EstSettings:
    """Validate the raw ``[est]`` table (``default_template`` is ``[policy] default_template``)."""
    t = Table(raw, file, "est")
    t.bool("enabled", False)
    base = Path(file).resolve().parent if file and not file.startswith("<") else Path.cwd()
    cert = t.opt_str("tls_certificate")
    key = t.opt_str("tls_key")
    if (cert is None) != (key is None):
        raise ConfigError(file, "est.tls_key", "tls_certificate and tls_key go together")
    proxies = []
    for i, entry in enumerate(t.str_list("trusted_proxies")):
        try:
            proxies.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(
                file, f"est.trusted_proxies[{i}]", "not an IP address or network"
            ) from None
    template = t.str("default_template", default_template)
    _known_template(template, templates, file, "est.default_template")
    server_template = t.str("server_template", "tls-server")
    if cert is None:
        _known_template(server_template, templates, file, "est.server_template")
    default = _label_settings(t, "", template, None, base, templates)
    labels: dict[str, LabelSettings] = {}
    labels_t = t.table("labels")
    for name in labels_t.data:
        if not _LABEL.fullmatch(name) or name in OPERATIONS_WITH_CSRATTRS:
            raise ConfigError(
                file,
                f"est.labels.{name}",
                "a label is 1-64 of [A-Za-z0-9._-] and must not be an operation name "
                "(RFC 7030 §3.2.2)",
            )
        label_t = labels_t.table(name)
        label_template = label_t.str("template")
        _known_template(label_template, templates, file, f"est.labels.{name}.template")
        labels[name] = _label_settings(label_t, name, label_template, default, base, templates)
        label_t.finish()
    labels_t.finish()
    settings = EstSettings(
        host=t.str("host", "127.0.0.1"),
        port=t.int("port", 8443, minimum=0),
        tls_certificate=_path(base, cert),
        tls_key=_path(base, key),
        server_names=t.str_list("server_names", ("localhost", "127.0.0.1")),
        server_template=server_template,
        realm=t.str("realm", "certgate EST"),
        trusted_proxies=tuple(proxies),
        client_cert_header=t.str("client_cert_header", "X-SSL-Client-Cert"),
        retry_window=t.seconds("retry_window", "5m"),
        max_body_bytes=t.int("max_body_bytes", 65536, minimum=1024),
        send_cte_header=t.bool("send_cte_header", True),
        default=default,
        labels=labels,
    )
    t.finish()
    if settings.port > 65535:
        raise ConfigError(file, "est.port", "must be at most 65535")
    if not settings.server_names and cert is None:
        raise ConfigError(file, "est.server_names", "needed when tls_certificate is not given")
    if '"' in settings.realm or "\\" in settings.realm:
        raise ConfigError(file, "est.realm", "must not contain quotes or backslashes")
    return settings


def _label_settings(
    t: Table,
    label: str,
    template: str,
    parent: LabelSettings | None,
    base: Path,
    templates: Mapping[str, Any],
) -> LabelSettings:
    auth = t.str_list("auth", parent.auth if parent else AUTH_METHODS)
    for i, method in enumerate(auth):
        if method not in AUTH_METHODS:
            raise ConfigError(t.file, f"{t.key('auth')}[{i}]", f"expected one of {AUTH_METHODS}")
    if not auth:
        raise ConfigError(t.file, t.key("auth"), "at least one authentication method")
    if parent is not None and "trust_anchors" not in t.data:
        own_ca, anchors = parent.own_ca, parent.anchors
        t.str_list("trust_anchors")
    else:
        own_ca, anchors = _anchors(t, base)
    groups = t.str_list("groups", tuple(sorted(parent.groups)) if parent else ())
    return LabelSettings(
        label=label,
        template=template,
        auth=auth,
        own_ca=own_ca,
        anchors=anchors,
        require_pop_link=t.bool("require_pop_link", parent.require_pop_link if parent else False),
        groups=frozenset(groups),
        csrattrs=t.bool("csrattrs", parent.csrattrs if parent else True),
    )


def _anchors(t: Table, base: Path) -> tuple[bool, tuple[x509.Certificate, ...]]:
    own_ca = False
    anchors: list[x509.Certificate] = []
    for i, entry in enumerate(t.str_list("trust_anchors", (OWN_CA,))):
        if entry == OWN_CA:
            own_ca = True
            continue
        path = _path(base, entry)
        assert path is not None
        key = f"{t.key('trust_anchors')}[{i}]"
        try:
            certs = x509.load_pem_x509_certificates(path.read_bytes())
        except OSError as exc:
            raise ConfigError(t.file, key, f"cannot read {path}: {exc.strerror}") from None
        except ValueError:
            raise ConfigError(t.file, key, f"{path} holds no PEM certificates") from None
        anchors.extend(certs)
    return own_ca, tuple(anchors)


def _known_template(name: str, templates: Mapping[str, Any], file: str, key: str) -> None:
    if name not in templates:
        raise ConfigError(file, key, f"unknown certificate template {name!r}")


def _path(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() else base / path


def label_names(raw: Mapping[str, Any]) -> frozenset[str]:
    """The labels of a raw ``[est]`` table that :func:`parse_settings` has already accepted
    (the server validated it at start-up), ``""`` (the unlabelled path) included: the admin API
    checks a code's label with it without the templates ``parse_settings`` needs."""
    labels = raw.get("labels")
    return frozenset({"", *(labels if isinstance(labels, Mapping) else ())})
