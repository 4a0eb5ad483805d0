"""The ``[acme]`` configuration table, validated at start-up (keys: conf/certgate.toml)."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import Table, resolve_secret
from gateway.durations import ZERO
from gateway.errors import ConfigError

#: RFC 5280 §5.3.1 reasons a subscriber may give by default (Let's Encrypt's set).
DEFAULT_REASONS = (0, 1, 3, 4, 5)


@dataclass(frozen=True)
class AcmeSettings:
    default_template: str
    profiles: tuple[str, ...]
    terms_of_service: str
    require_terms_agreement: bool
    website: str
    caa_identities: tuple[str, ...]
    caa_recheck_after: int
    external_account_required: bool
    eab_encryption_key: bytes
    http01_port: int
    tls_alpn01_port: int
    dns_resolver: tuple[str, int] | None
    validation_timeout: int
    order_lifetime: int
    pending_authz_lifetime: int
    valid_authz_lifetime: int
    nonce_lifetime: int
    ari_retry_after: int
    processing_retry_after: int
    revocation_reasons: tuple[int, ...]
    max_identifiers: int
    rate_limit_window: int
    rate_limit_account: int
    rate_limit_ip: int
    rate_limit_new_accounts: int
    rate_limit_new_accounts_window: int
    rate_limit_new_orders: int
    rate_limit_new_orders_window: int

    @property
    def terms_required(self) -> bool:
        """RFC 8555 §7.3: agreement is required only where the directory shows terms."""
        return bool(self.terms_of_service) and self.require_terms_agreement


def parse_settings(
    raw: Mapping[str, Any],
    file: str,
    *,
    default_template: str,
    templates: Mapping[str, Any],
    data_dir: Path,
) -> AcmeSettings:
    """Validate ``[acme]``; every error names ``acme.<key>``. Durations are positive, but
    ``caa_recheck_after = "0s"`` (re-check CAA at every finalization)."""
    t = Table(raw, file, "acme")
    t.bool("enabled", False)
    default = t.str("default_template", default_template)
    if default not in templates:
        raise ConfigError(file, "acme.default_template", f"no template {default!r}")
    profiles = t.str_list("profiles", (default,))
    for i, name in enumerate(profiles):
        if name not in templates:
            raise ConfigError(file, f"acme.profiles[{i}]", f"no template {name!r}")
    if default not in profiles:
        profiles = (default, *profiles)
    resolver = t.str("dns_resolver", "")
    reasons = t.raw("revocation_reasons")
    if reasons is None:
        reasons = list(DEFAULT_REASONS)
    if not isinstance(reasons, list) or not all(
        isinstance(r, int) and not isinstance(r, bool) and r in (0, 1, 2, 3, 4, 5, 6, 8, 9, 10)
        for r in reasons
    ):
        raise ConfigError(file, "acme.revocation_reasons", "expected RFC 5280 reason codes")
    settings = AcmeSettings(
        default_template=default,
        profiles=profiles,
        terms_of_service=t.str("terms_of_service", ""),
        require_terms_agreement=t.bool("require_terms_agreement", True),
        website=t.str("website", ""),
        caa_identities=_caa_identities(t, file),
        caa_recheck_after=t.seconds("caa_recheck_after", "8h", minimum=ZERO),
        external_account_required=t.bool("external_account_required", False),
        eab_encryption_key=_eab_key(t, file, data_dir),
        http01_port=_port(t, "http01_port", 80),
        tls_alpn01_port=_port(t, "tls_alpn01_port", 443),
        dns_resolver=_resolver(resolver, file) if resolver else None,
        validation_timeout=t.seconds("validation_timeout", "10s"),
        order_lifetime=t.seconds("order_lifetime", "7d"),
        pending_authz_lifetime=t.seconds("pending_authz_lifetime", "7d"),
        valid_authz_lifetime=t.seconds("valid_authz_lifetime", "30d"),
        nonce_lifetime=t.seconds("nonce_lifetime", "1h"),
        ari_retry_after=t.seconds("ari_retry_after", "6h"),
        processing_retry_after=t.seconds("processing_retry_after", "3s"),
        revocation_reasons=tuple(reasons),
        max_identifiers=t.int("max_identifiers", 100, minimum=1),
        rate_limit_window=t.seconds("rate_limit_window", "1m"),
        rate_limit_account=t.int("rate_limit_account", 3000, minimum=0),
        rate_limit_ip=t.int("rate_limit_ip", 6000, minimum=0),
        rate_limit_new_accounts=t.int("rate_limit_new_accounts", 100, minimum=0),
        rate_limit_new_accounts_window=t.seconds("rate_limit_new_accounts_window", "3h"),
        rate_limit_new_orders=t.int("rate_limit_new_orders", 3000, minimum=0),
        rate_limit_new_orders_window=t.seconds("rate_limit_new_orders_window", "1h"),
    )
    t.finish()
    return settings


def _caa_identities(t: Table, file: str) -> tuple[str, ...]:
    """Issuer domain names (RFC 8659 §4.2), compared case-insensitively without a final dot."""
    names = tuple(n.strip().rstrip(".").lower() for n in t.str_list("caa_identities"))
    for i, name in enumerate(names):
        labels = name.split(".")
        if not name or any(not label or not label.replace("-", "").isalnum() for label in labels):
            raise ConfigError(file, f"acme.caa_identities[{i}]", "expected a domain name")
    return names


def _port(t: Table, name: str, default: int) -> int:
    port = t.int(name, default, minimum=1)
    if port > 65535:
        raise ConfigError(t.file, t.key(name), "must be a TCP port (1..65535)")
    return port


def _resolver(text: str, file: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(file, "acme.dns_resolver", "expected 'ADDRESS:PORT'")
    return host.strip("[]"), int(port)


def _eab_key(t: Table, file: str, data_dir: Path) -> bytes:
    return eab_encryption_key(t.raw("eab_encryption_key"), file, data_dir)


def eab_encryption_key(ref: object, file: str, data_dir: Path, *, create: bool = True) -> bytes:
    """The AES-256 key that encrypts EAB HMAC keys at rest: ``eab_encryption_key`` (``ref``, a
    secret reference, required when several instances share a database), else a random key
    kept in ``<data dir>/acme-eab.key`` (mode 0600), made on first use unless ``create`` is
    false (the admin API reads the key the front-end made: :mod:`protocols.acme.admin`)."""
    if ref is not None:
        secret = resolve_secret(ref, file, "acme.eab_encryption_key")
        return hashlib.sha256(b"certgate acme eab v1\0" + secret.encode()).digest()
    path = data_dir / "acme-eab.key"
    if not path.exists() and not create:
        raise ConfigError(file, "acme.eab_encryption_key", f"no EAB key file {path} yet")
    if not path.exists():
        # Several workers may start at once: write a private temp file, then link it into
        # place, which fails if another process won; everyone then reads the winner's key.
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f".acme-eab.key.{secrets.token_hex(8)}"
        tmp.write_bytes(secrets.token_bytes(32))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_bytes()
    if len(key) != 32:
        raise ConfigError(file, "acme.eab_encryption_key", f"{path} must hold 32 bytes")
    return key
