"""The ``[scep]`` configuration table, validated at start-up with full key paths.

```
[scep]
enabled = true
ra_key_passphrase = "env:SCEP_RA_PASSPHRASE"   # default: $CERTGATE_CA_PASSPHRASE or generated
ra_template = "scep-ra"                          # template the RA certificate is issued under
ndes_alias = "<endpoint>"                        # served at /certsrv/mscep/mscep.dll
next_ca_certificates = "next-ca.pem"             # enables GetNextCACert
[scep.endpoints.<name>]
template = "device"
key_usage_templates = { signature = "...", encryption = "...", both = "..." }
challenge = "static" | "otp" | "webhook" | "none"
challenge_password = "env:..." | "file:..."     # static
webhook_url = "https://mdm.example/scep-check"   # webhook
webhook_timeout = "5s"
capabilities = ["AES", "DES3", ...]
legacy_des = false
renewal = true
resync = "issue" | "resend"
ra_mode = "combined" | "ndes-pair"             # NDES-style RA signature + encryption certs
signer = "request-key" | "any"                   # default "any" with ndes-pair
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import Table, resolve_secret
from gateway.errors import ConfigError

#: Keywords this server implements (RFC 8894 §3.5.2); nothing else may be advertised.
KNOWN_CAPS = (
    "AES",
    "DES3",
    "GetNextCACert",
    "POSTPKIOperation",
    "Renewal",
    "SCEPStandard",
    "SHA-1",
    "SHA-256",
    "SHA-512",
)
DEFAULT_CAPS = (
    "AES",
    "DES3",
    "POSTPKIOperation",
    "Renewal",
    "SCEPStandard",
    "SHA-1",
    "SHA-256",
    "SHA-512",
)
CHALLENGE_MODES = ("static", "otp", "webhook", "none")
DEFAULT_CHALLENGE = "static"
RA_MODES = ("combined", "ndes-pair")
SIGNERS = ("request-key", "any")
KU_KEYS = ("signature", "encryption", "both")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Endpoint:
    """One SCEP endpoint (``/scep/<name>``): its template(s), authorization and algorithms."""

    name: str
    template: str
    key_usage_templates: Mapping[str, str] = field(default_factory=dict)
    challenge: str = DEFAULT_CHALLENGE
    challenge_password: str | None = None
    webhook_url: str | None = None
    webhook_timeout: float = 5.0
    capabilities: tuple[str, ...] = DEFAULT_CAPS
    legacy_des: bool = False
    renewal: bool = True
    resync: str = "issue"
    #: "combined": one RA certificate signs and decrypts; "ndes-pair": NDES's two RA
    #: certificates, one to sign CertReps, one (keyEncipherment) to decrypt requests.
    ra_mode: str = "combined"
    #: "request-key": a PKCSReq's signer must hold the CSR's key (RFC 8894 §2.3); "any": a
    #: throw-away signer is accepted (NDES clients), the CSR's signature proves possession.
    signer: str = "request-key"

    @property
    def ciphers(self) -> frozenset[str]:
        """Content-encryption algorithms accepted (RFC 8894 §2.9; single DES only in legacy)."""
        allowed = {"aes128_cbc", "aes192_cbc", "aes256_cbc", "tripledes_3key"}
        if self.legacy_des:
            allowed.add("des")
        return frozenset(allowed)

    @property
    def digests(self) -> frozenset[str]:
        """Digest algorithms accepted on requests; MD5 only in legacy mode (RFC 8894 §7.5)."""
        allowed = {"sha1", "sha224", "sha256", "sha384", "sha512"}
        if self.legacy_des:
            allowed.add("md5")
        return frozenset(allowed)


@dataclass(frozen=True)
class ScepSettings:
    endpoints: Mapping[str, Endpoint]
    ra_template: str = "scep-ra"
    ra_signature_template: str = "scep-ra-signature"
    ra_encryption_template: str = "scep-ra-encryption"
    ra_key_passphrase: str | None = None
    ndes_alias: str | None = None
    next_ca_pem: bytes | None = None


def parse_settings(
    raw: Mapping[str, Any], file: str, templates: Mapping[str, object], default_template: str
) -> ScepSettings:
    """Validate ``[scep]``; raises :class:`ConfigError` naming ``scep.<key>``."""
    table = Table(raw, file, "scep")
    table.bool("enabled", False)
    ra_template = table.str("ra_template", "scep-ra")
    if ra_template not in templates:
        raise ConfigError(
            file, "scep.ra_template", f"template {ra_template!r} not found (ship scep-ra.toml)"
        )
    passphrase_ref = table.raw("ra_key_passphrase")
    passphrase = (
        None
        if passphrase_ref is None
        else resolve_secret(passphrase_ref, file, "scep.ra_key_passphrase")
    )
    next_ca = table.opt_str("next_ca_certificates")
    next_pem = None
    if next_ca is not None:
        path = Path(next_ca)
        if not path.is_absolute():
            path = Path(file).resolve().parent / path
        try:
            next_pem = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                file, "scep.next_ca_certificates", f"cannot read {path}: {exc.strerror}"
            ) from None
    endpoints_table = table.table("endpoints")
    endpoints: dict[str, Endpoint] = {}
    for name in endpoints_table.data:
        endpoints[name] = _endpoint(
            endpoints_table.table(name), name, file, templates, default_template, next_pem
        )
    endpoints_table.finish()
    if not endpoints:
        raise ConfigError(file, "scep.endpoints", "define at least one [scep.endpoints.<name>]")
    pair_templates = (
        table.str("ra_signature_template", "scep-ra-signature"),
        table.str("ra_encryption_template", "scep-ra-encryption"),
    )
    if any(e.ra_mode == "ndes-pair" for e in endpoints.values()):
        keys = ("ra_signature_template", "ra_encryption_template")
        for key, name in zip(keys, pair_templates, strict=True):
            if name not in templates:
                raise ConfigError(
                    file, f"scep.{key}", f"template {name!r} not found (ship {name}.toml)"
                )
    alias = table.opt_str("ndes_alias")
    if alias is not None and alias not in endpoints:
        raise ConfigError(file, "scep.ndes_alias", f"no endpoint {alias!r}")
    table.finish()
    return ScepSettings(
        endpoints=endpoints,
        ra_template=ra_template,
        ra_signature_template=pair_templates[0],
        ra_encryption_template=pair_templates[1],
        ra_key_passphrase=passphrase,
        ndes_alias=alias if alias is not None else next(iter(endpoints)),
        next_ca_pem=next_pem,
    )


def _endpoint(
    t: Table,
    name: str,
    file: str,
    templates: Mapping[str, object],
    default_template: str,
    next_pem: bytes | None,
) -> Endpoint:
    if not _NAME.match(name):
        raise ConfigError(file, t.path, "endpoint names are [A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
    template = t.str("template", default_template)
    if template not in templates:
        raise ConfigError(file, t.key("template"), f"unknown template {template!r}")
    ku_table = t.table("key_usage_templates")
    ku: dict[str, str] = {}
    for key in KU_KEYS:
        value = ku_table.opt_str(key)
        if value is not None:
            if value not in templates:
                raise ConfigError(file, ku_table.key(key), f"unknown template {value!r}")
            ku[key] = value
    ku_table.finish()
    challenge = t.str("challenge", DEFAULT_CHALLENGE)
    if challenge not in CHALLENGE_MODES:
        raise ConfigError(file, t.key("challenge"), f"must be one of {list(CHALLENGE_MODES)}")
    password_ref = t.raw("challenge_password")
    password = None
    if challenge == "static":
        if password_ref is None:
            raise ConfigError(file, t.key("challenge_password"), "required for challenge static")
        password = resolve_secret(password_ref, file, t.key("challenge_password"))
        if len(password) < 8:
            raise ConfigError(file, t.key("challenge_password"), "use at least 8 characters")
    elif password_ref is not None:
        raise ConfigError(file, t.key("challenge_password"), f"unused with {challenge!r}")
    webhook = t.opt_str("webhook_url")
    if challenge == "webhook" and not webhook:
        raise ConfigError(file, t.key("webhook_url"), "required for challenge webhook")
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise ConfigError(file, t.key("webhook_url"), "must be an http(s) URL")
    timeout = t.seconds("webhook_timeout", "5s")
    renewal = t.bool("renewal", True)
    caps = t.str_list("capabilities", DEFAULT_CAPS)
    for cap in caps:
        if cap not in KNOWN_CAPS:
            raise ConfigError(
                file, t.key("capabilities"), f"unknown capability {cap!r} (known: {KNOWN_CAPS})"
            )
    if "Renewal" in caps and not renewal:
        raise ConfigError(file, t.key("capabilities"), "'Renewal' advertised but renewal = false")
    if "GetNextCACert" in caps and next_pem is None:
        raise ConfigError(
            file, t.key("capabilities"), "'GetNextCACert' needs scep.next_ca_certificates"
        )
    if next_pem is not None and "GetNextCACert" not in caps and "capabilities" not in t.data:
        caps = (*caps, "GetNextCACert")
    resync = t.str("resync", "issue")
    if resync not in ("issue", "resend"):
        raise ConfigError(file, t.key("resync"), "must be 'issue' or 'resend'")
    ra_mode = t.str("ra_mode", "combined")
    if ra_mode not in RA_MODES:
        raise ConfigError(file, t.key("ra_mode"), f"must be one of {list(RA_MODES)}")
    signer = t.str("signer", "any" if ra_mode == "ndes-pair" else "request-key")
    if signer not in SIGNERS:
        raise ConfigError(file, t.key("signer"), f"must be one of {list(SIGNERS)}")
    endpoint = Endpoint(
        name=name,
        template=template,
        key_usage_templates=ku,
        challenge=challenge,
        challenge_password=password,
        webhook_url=webhook,
        webhook_timeout=float(timeout),
        capabilities=tuple(sorted(set(caps))),
        legacy_des=t.bool("legacy_des", False),
        renewal=renewal,
        resync=resync,
        ra_mode=ra_mode,
        signer=signer,
    )
    t.finish()
    return endpoint


def challenge_modes(raw: Mapping[str, Any]) -> dict[str, str]:
    """Each endpoint's ``challenge`` mode read from a raw ``[scep]`` table that
    :func:`parse_settings` has already accepted (the server validated it at start-up): the
    admin API checks an endpoint name with it without the templates ``parse_settings`` needs."""
    endpoints = raw.get("endpoints")
    if not isinstance(endpoints, Mapping):
        return {}
    return {
        name: str(table.get("challenge", DEFAULT_CHALLENGE))
        for name, table in endpoints.items()
        if isinstance(table, Mapping)
    }
