"""The local CA's settings: its ``[connectors.<name>]`` table, validated completely up front.

Every problem is a :class:`gateway.errors.ConfigError` naming ``connectors.<name>.<key>``: the
table is read through :class:`gateway.toml_reader.Table`, like every other table, and its
durations in the one grammar of :mod:`gateway.durations` (positive).
Secrets (``passphrase``, ``import_key_passphrase``, ``import_pkcs12_passphrase``,
``pkcs11_pin``) are references (``env:VAR`` or ``file:PATH``) resolved here with
:func:`gateway.config.resolve_secret`, the same resolver every other secret-bearing key
uses; they are kept out of ``repr``.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.config import Table, resolve_secret
from gateway.errors import ConfigError

#: Used when ``passphrase`` is not set (before falling back to a generated passphrase file).
PASSPHRASE_ENV = "CERTGATE_CA_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class KeyAlgorithm(enum.StrEnum):
    """Key type of a CA created on first start (the same for the root and the issuing CA)."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"


@dataclass(frozen=True)
class ImportSource:
    """An existing issuing CA to adopt on first start instead of generating one.

    Either ``certificate`` + ``key`` (PEM) or ``pkcs12``; ``chain`` is a PEM file with the
    issuer chain up to the root (a PKCS#12 file may carry it already).
    """

    certificate: Path | None = None
    key: Path | None = None
    key_passphrase: bytes | None = field(default=None, repr=False)
    pkcs12: Path | None = None
    pkcs12_passphrase: bytes | None = field(default=None, repr=False)
    chain: Path | None = None


class KeyStoreKind(enum.StrEnum):
    """Where the CA keys live: encrypted files in the CA directory, or a PKCS#11 token."""

    FILE = "file"
    PKCS11 = "pkcs11"


@dataclass(frozen=True)
class Pkcs11Settings:
    """A PKCS#11 token holding the CA keys (``key_store = "pkcs11"``).

    The token is chosen by ``token_label`` or ``slot`` (a slot id); the user PIN comes from a
    secret reference. ``key_label`` is the CKA_LABEL of the issuing CA key pair,
    ``root_key_label`` the root's (used once, when the CA is created).
    """

    module: Path
    pin: str = field(repr=False)
    key_label: str
    root_key_label: str
    token_label: str | None = None
    slot: int | None = None


@dataclass(frozen=True)
class LocalCASettings:
    """Validated settings of one local CA connector (defaults as in ``conf/certgate.toml``)."""

    name: str
    config_file: str
    key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256
    #: ``None``: no passphrase configured, a generated one is stored in the CA directory.
    passphrase: bytes | None = field(default=None, repr=False)
    common_name_prefix: str = "certgate"
    organization: str = ""
    root_validity: timedelta = timedelta(days=20 * 365)
    issuing_validity: timedelta = timedelta(days=10 * 365)
    crl_validity: timedelta = timedelta(days=7)
    #: ``None`` (unset): the gateway's own URLs (``<publication URL>/ca/crl``,
    #: ``/ca/issuing.crt``) when it publishes this CA; ``()`` (an explicit ``[]``): none.
    crl_urls: tuple[str, ...] | None = None
    aia_urls: tuple[str, ...] | None = None
    import_source: ImportSource | None = None
    #: ``None``: the keys are encrypted files in the CA directory (``key_store = "file"``).
    pkcs11: Pkcs11Settings | None = None

    @property
    def key_store(self) -> KeyStoreKind:
        return KeyStoreKind.FILE if self.pkcs11 is None else KeyStoreKind.PKCS11

    def key_path(self, key: str) -> str:
        """The configuration key path of ``key``, as error messages name it."""
        return f"connectors.{self.name}.{key}"

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.config_file, self.key_path(key), reason)


class _Reader:
    """The connector table read through :class:`gateway.toml_reader.Table` (the one reader:
    key paths, unknown keys refused with a suggestion), plus the local CA's own kinds of
    value: secrets, file paths and publication URLs."""

    def __init__(self, name: str, data: Mapping[str, Any], file: str) -> None:
        self.table = Table(data, file, f"connectors.{name}")
        self.file = file

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.file, self.table.key(key), reason)

    def string(self, key: str, default: str) -> str:
        return self.table.str(key, default)

    def duration(self, key: str, default: str) -> timedelta:
        return self.table.duration(key, default)

    def urls(self, key: str) -> tuple[str, ...] | None:
        if self.table.raw(key) is None:
            return None
        items = self.table.str_items(key)
        for where, url in items:
            parts = urlsplit(url)
            # RFC 5280 §4.2.1.13/§4.2.2.1: CRLs and CA certificates are signed objects fetched
            # over plain HTTP (https would need the very chain it serves to validate).
            if parts.scheme != "http" or not parts.hostname or any(c.isspace() for c in url):
                raise self.error(where, f"expected an http:// URL, got {url!r}")
        return tuple(url for _, url in items)

    def secret(self, key: str) -> bytes | None:
        value = self.table.raw(key)
        if value is None:
            return None
        resolved = resolve_secret(value, self.file, self.table.key(key))
        if not resolved:
            raise self.error(key, "the secret is empty")
        return resolved.encode("utf-8")

    def file_path(self, key: str) -> Path | None:
        value = self.table.raw(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(key, "expected a file path")
        path = Path(value)
        # Relative to the configuration file, like file: secret references.
        return path if path.is_absolute() else Path(self.file).resolve().parent / path

    def finish(self) -> None:
        self.table.finish()


def parse_settings(name: str, data: Mapping[str, Any], config_file: str) -> LocalCASettings:
    """Validate the ``[connectors.<name>]`` table of a local CA."""
    if not _NAME.match(name):
        raise ConfigError(
            config_file,
            f"connectors.{name}",
            "a local CA's name names its directory: use letters, digits, '-' and '_'",
        )
    r = _Reader(name, data, config_file)
    _refuse_stray_pkcs11(r, data)
    algorithm_text = r.string("key_algorithm", KeyAlgorithm.EC_P256.value)
    algorithm = r.table.choice("key_algorithm", algorithm_text, KeyAlgorithm)
    prefix = r.string("common_name_prefix", "certgate")
    if not prefix.strip():
        raise r.error("common_name_prefix", "must not be empty")
    store_text = r.string("key_store", KeyStoreKind.FILE.value)
    store = r.table.choice("key_store", store_text, KeyStoreKind)
    pkcs11 = _pkcs11(r, name) if store is KeyStoreKind.PKCS11 else None
    settings = LocalCASettings(
        name=name,
        config_file=config_file,
        key_algorithm=algorithm,
        passphrase=_passphrase(r) if pkcs11 is None else None,
        common_name_prefix=prefix,
        organization=r.string("organization", ""),
        root_validity=r.duration("root_validity", "20y"),
        issuing_validity=r.duration("issuing_validity", "10y"),
        crl_validity=r.duration("crl_validity", "7d"),
        crl_urls=r.urls("crl_urls"),
        aia_urls=r.urls("aia_urls"),
        import_source=_import_source(r),
        pkcs11=pkcs11,
    )
    if pkcs11 is not None and settings.import_source is not None:
        # A token-held key is never read from a file: it is put into the token with the
        # token's own tools and named by pkcs11_key_label.
        raise r.error("key_store", 'import_* settings are not supported with key_store = "pkcs11"')
    r.finish()
    return settings


_PKCS11_KEYS = (
    "pkcs11_module",
    "pkcs11_token_label",
    "pkcs11_slot",
    "pkcs11_pin",
    "pkcs11_key_label",
    "pkcs11_root_key_label",
)


def _refuse_stray_pkcs11(r: _Reader, data: Mapping[str, Any]) -> None:
    """``pkcs11_*`` keys without ``key_store = "pkcs11"`` would be silently ignored."""
    if data.get("key_store") == KeyStoreKind.PKCS11.value:
        return
    for key in _PKCS11_KEYS:
        if key in data:
            raise r.error(key, 'only meaningful with key_store = "pkcs11"')


def _pkcs11(r: _Reader, name: str) -> Pkcs11Settings:
    """The ``pkcs11_*`` keys (``key_store = "pkcs11"``); no passphrase, the PIN by reference."""
    if r.table.raw("passphrase") is not None:
        raise r.error("passphrase", 'not used with key_store = "pkcs11" (the token holds the keys)')
    module = r.file_path("pkcs11_module")
    if module is None:
        raise r.error("pkcs11_module", 'required with key_store = "pkcs11"')
    token_label = r.table.opt_str("pkcs11_token_label")
    slot = r.table.raw("pkcs11_slot")
    if slot is not None and (isinstance(slot, bool) or not isinstance(slot, int) or slot < 0):
        raise r.error("pkcs11_slot", "expected a slot id (a non-negative integer)")
    if (token_label is None) == (slot is None):
        raise r.error("pkcs11_token_label", "set either pkcs11_token_label or pkcs11_slot")
    pin = r.table.raw("pkcs11_pin")
    if pin is None:
        raise r.error("pkcs11_pin", 'required with key_store = "pkcs11" (env:VAR or file:PATH)')
    resolved = resolve_secret(pin, r.file, r.table.key("pkcs11_pin"))
    if not resolved:
        raise r.error("pkcs11_pin", "the secret is empty")
    key_label = r.string("pkcs11_key_label", f"certgate-{name}-issuing")
    root_label = r.string("pkcs11_root_key_label", f"certgate-{name}-root")
    for key, label in (("pkcs11_key_label", key_label), ("pkcs11_root_key_label", root_label)):
        if not label.strip():
            raise r.error(key, "must not be empty")
    if key_label == root_label:
        raise r.error("pkcs11_root_key_label", "must differ from pkcs11_key_label")
    return Pkcs11Settings(
        module=module,
        pin=resolved,
        key_label=key_label,
        root_key_label=root_label,
        token_label=token_label,
        slot=slot,
    )


def _passphrase(r: _Reader) -> bytes | None:
    configured = r.secret("passphrase")
    if configured is not None:
        return configured
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env is None:
        return None
    if not from_env:
        raise r.error("passphrase", f"not set, and {PASSPHRASE_ENV} is set but empty")
    return from_env.encode("utf-8")


def _import_source(r: _Reader) -> ImportSource | None:
    source = ImportSource(
        certificate=r.file_path("import_certificate"),
        key=r.file_path("import_key"),
        key_passphrase=r.secret("import_key_passphrase"),
        pkcs12=r.file_path("import_pkcs12"),
        pkcs12_passphrase=r.secret("import_pkcs12_passphrase"),
        chain=r.file_path("import_chain"),
    )
    pem = source.certificate is not None or source.key is not None
    if pem and source.pkcs12 is not None:
        raise r.error("import_pkcs12", "use either import_pkcs12 or import_certificate+import_key")
    if source.key is not None and source.certificate is None:
        raise r.error("import_certificate", "is required with import_key")
    if source.certificate is not None and source.key is None:
        raise r.error("import_key", "is required with import_certificate")
    if source.key_passphrase is not None and source.key is None:
        raise r.error("import_key_passphrase", "is only meaningful with import_key")
    if source.pkcs12_passphrase is not None and source.pkcs12 is None:
        raise r.error("import_pkcs12_passphrase", "is only meaningful with import_pkcs12")
    if not pem and source.pkcs12 is None:
        if source.chain is not None:
            raise r.error("import_chain", "needs import_certificate+import_key or import_pkcs12")
        return None
    return source
