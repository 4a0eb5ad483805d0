"""Load certificate templates from TOML (one ``conf/templates/<name>.toml`` per template).

Validation is complete and fails fast: every problem raises
:class:`gateway.errors.ConfigError` naming the file, the key path (``san.dns_suffixes[2]``,
``subject.rdn[0].pattern``) and the reason. Unknown keys are errors, so a typo never silently
falls back to a default. The schema is documented key by key in the shipped templates.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

from cryptography import x509

from gateway.durations import parse_duration
from gateway.errors import ConfigError
from gateway.policy.catalog import catalog_problems
from gateway.policy.template import (
    TEMPLATE_NAME,
    CertificateTemplate,
    IssuancePolicy,
    KeyPolicy,
    KeyUsagePolicy,
    Permissions,
    RdnRule,
    SanPolicy,
    SubjectPolicy,
)
from gateway.policy.vocabulary import (
    CA_ONLY_USAGES,
    CURVES,
    EKUS,
    KEY_USAGES,
    RDN_TYPES,
    KeyAlgorithm,
    SanType,
    SubjectSource,
    parse_oid,
)
from gateway.toml_reader import Table

TOP_KEYS = frozenset(
    {
        "name",
        "display_name",
        "oid",
        "schema_version",
        "major_version",
        "minor_version",
        "validity",
        "renewal_period",
        "supersedes",
        "connector",
        "connector_params",
        "key_usage",
        "key_policy",
        "subject",
        "san",
        "issuance",
        "permissions",
    }
)
KEY_USAGE_KEYS = frozenset({"usages", "critical", "ekus"})
KEY_POLICY_KEYS = frozenset(
    {
        "algorithms",
        "min_rsa_bits",
        "curves",
        "allow_sha1_signature",
        "require_same_key_renewal",
        "relax_key_hygiene",
    }
)
SUBJECT_KEYS = frozenset({"source", "allow_empty", "cn_must_be_san", "rdn"})
RDN_KEYS = frozenset({"type", "pattern", "required", "max"})
SAN_KEYS = frozenset(
    {
        "types",
        "dns_suffixes",
        "dns_regex",
        "uri_regex",
        "max_count",
        "required",
        "require_validated",
        "allow_wildcards",
    }
)
ISSUANCE_KEYS = frozenset(
    {
        "manager_approval",
        "renewal_requires_prior_signature",
        "renewal_skips_approval",
        "early_renewal",
    }
)
PERMISSION_KEYS = frozenset({"enroll"})

_DNS_SUFFIX = re.compile(
    r"\.?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


def load_templates(directory: str | Path) -> dict[str, CertificateTemplate]:
    """Load every ``*.toml`` file in ``directory`` (not recursive), keyed by template name.

    Beyond per-file validation this checks the set: names and OIDs are unique, ``supersedes``
    names known templates, and supersession has no cycles (``msPKI-Supersede-Templates``).
    """
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError(str(root), "", "template directory does not exist")
    files = sorted(p for p in root.glob("*.toml") if p.is_file())
    if not files:
        raise ConfigError(str(root), "", "no *.toml certificate templates found")
    templates: dict[str, CertificateTemplate] = {}
    origin: dict[str, str] = {}
    for path in files:
        template = load_template(path)
        if template.name in templates:
            raise ConfigError(
                str(path),
                "name",
                f"duplicate template name; also defined in {origin[template.name]}",
            )
        templates[template.name] = template
        origin[template.name] = str(path)
    for name, key_path, reason in catalog_problems(templates):
        raise ConfigError(origin[name], key_path, reason)
    return templates


def load_template(path: str | Path) -> CertificateTemplate:
    """Read and validate one template file; its ``name`` must equal the file stem."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(str(file), "", f"cannot read template: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), "", f"invalid TOML: {exc}") from exc
    template = parse_template(data, str(file))
    if template.name != file.stem:
        raise ConfigError(
            str(file),
            "name",
            f"template name {template.name!r} must equal the file stem {file.stem!r}",
        )
    return template


def parse_template(data: Mapping[str, object], file: str) -> CertificateTemplate:
    """Validate a decoded template table; ``file`` is only used in error messages."""
    top = Table(data, file, "", TOP_KEYS)
    name = top.str("name")
    if not TEMPLATE_NAME.fullmatch(name) or len(name) > 64:
        top.fail("name", "must match [a-z0-9][a-z0-9-]* and be at most 64 characters")
    oid = top.str("oid")
    try:
        parse_oid(oid)
    except ValueError as exc:
        top.fail("oid", str(exc))
    display_name = top.str("display_name", name)
    if not display_name.strip():
        top.fail("display_name", "must not be blank")
    schema_version = top.int("schema_version", 2, minimum=1, maximum=4)
    major = top.int("major_version", 100, minimum=1, maximum=2**32 - 1)
    minor = top.int("minor_version", 0, minimum=0, maximum=2**32 - 1)
    validity = _duration(top, "validity")
    renewal_period = _duration(top, "renewal_period")
    if renewal_period >= validity:
        top.fail("renewal_period", "must be shorter than validity")
    supersedes = top.str_list("supersedes")
    for key_path, value in top.str_items("supersedes", ()):
        if value == name:
            top.fail(key_path, "a template cannot supersede itself")
        if not TEMPLATE_NAME.fullmatch(value):
            top.fail(key_path, f"{value!r} is not a template name")
    if len(set(supersedes)) != len(supersedes):
        top.fail("supersedes", "lists a template twice")
    connector = top.str("connector", "local")
    if not connector:
        top.fail("connector", "must not be empty")
    params = top.table("connector_params")
    connector_params = {key: params.str(key) for key in params.keys()}
    key_usage = _key_usage(top.table("key_usage", KEY_USAGE_KEYS))
    key_policy = _key_policy(top.table("key_policy", KEY_POLICY_KEYS))
    subject = _subject(top.table("subject", SUBJECT_KEYS))
    san = _san(top.table("san", SAN_KEYS))
    issuance = _issuance(top.table("issuance", ISSUANCE_KEYS))
    permissions = _permissions(top.table("permissions", PERMISSION_KEYS, required=True))
    try:
        return CertificateTemplate(
            name=name,
            oid=oid,
            validity=validity,
            renewal_period=renewal_period,
            display_name=display_name,
            schema_version=schema_version,
            major_version=major,
            minor_version=minor,
            supersedes=supersedes,
            connector=connector,
            connector_params=MappingProxyType(connector_params),
            key_usage=key_usage,
            key_policy=key_policy,
            subject=subject,
            san=san,
            issuance=issuance,
            permissions=permissions,
        )
    except ValueError as exc:  # the model's own invariants; the checks above name the key
        raise ConfigError(file, "", str(exc)) from exc


def _duration(table: Table, key: str) -> timedelta:
    text = table.str(key)
    try:
        value = parse_duration(text)
    except ValueError as exc:
        table.fail(key, str(exc))
    return value


def _key_usage(table: Table) -> KeyUsagePolicy:
    usages: list[str] = []
    for key_path, value in table.str_items("usages", ("digital_signature", "key_encipherment")):
        if value not in KEY_USAGES:
            table.fail(
                key_path, f"unknown key usage {value!r}; expected one of {', '.join(KEY_USAGES)}"
            )
        if value in CA_ONLY_USAGES:
            table.fail(key_path, f"{value} is for CA certificates; templates are end-entity only")
        usages.append(value)
    if not usages:
        table.fail("usages", "at least one key usage is required")
    if {"encipher_only", "decipher_only"} & set(usages) and "key_agreement" not in usages:
        table.fail("usages", "encipher_only/decipher_only need key_agreement (RFC 5280 §4.2.1.3)")
    critical = table.bool("critical", True)
    ekus: list[x509.ObjectIdentifier] = []
    for key_path, value in table.str_items("ekus", ()):
        eku = EKUS.get(value)
        if eku is None:
            try:
                eku = parse_oid(value)
            except ValueError:
                table.fail(
                    key_path, f"unknown EKU {value!r}; use one of {', '.join(EKUS)} or a dotted OID"
                )
        if eku in ekus:
            table.fail(key_path, f"duplicate EKU {value!r}")
        ekus.append(eku)
    return KeyUsagePolicy(usages=frozenset(usages), critical=critical, ekus=tuple(ekus))


def _key_policy(table: Table) -> KeyPolicy:
    algorithms = frozenset(
        table.choice(key_path, value, KeyAlgorithm)
        for key_path, value in table.str_items("algorithms", ("rsa", "ec"))
    )
    if not algorithms:
        table.fail("algorithms", "at least one key algorithm is required")
    min_rsa_bits = table.int("min_rsa_bits", 2048, minimum=1024, maximum=16384)
    curves: set[str] = set()
    for key_path, value in table.str_items("curves", ("secp256r1", "secp384r1")):
        if value not in CURVES:
            table.fail(
                key_path, f"unknown curve {value!r}; expected one of {', '.join(sorted(CURVES))}"
            )
        curves.add(value)
    if KeyAlgorithm.EC in algorithms and not curves:
        table.fail("curves", "ec is allowed but no curve is")
    policy = KeyPolicy(
        algorithms=algorithms,
        min_rsa_bits=min_rsa_bits,
        curves=frozenset(curves),
        allow_sha1_signature=table.bool("allow_sha1_signature", False),
        require_same_key_renewal=table.bool("require_same_key_renewal", False),
        relax_key_hygiene=table.bool("relax_key_hygiene", False),
    )
    return policy


def _subject(table: Table) -> SubjectPolicy:
    source = table.choice("source", table.str("source", "request"), SubjectSource)
    rules: list[RdnRule] = []
    for rule_table in table.tables("rdn", RDN_KEYS):
        rules.append(_rdn_rule(rule_table))
        if any(rule.type == rules[-1].type for rule in rules[:-1]):
            rule_table.fail("type", f"a rule for {rules[-1].label} already exists")
    policy = SubjectPolicy(
        source=source,
        allow_empty=table.bool("allow_empty", True),
        cn_must_be_san=table.bool("cn_must_be_san", False),
        rdn=tuple(rules),
    )
    return policy


def _rdn_rule(table: Table) -> RdnRule:
    label = table.str("type")
    oid = RDN_TYPES.get(label)
    if oid is None:
        try:
            oid = parse_oid(label)
        except ValueError:
            table.fail(
                "type",
                f"unknown RDN type {label!r}; use one of {', '.join(RDN_TYPES)} or a dotted OID",
            )
    rule = RdnRule(
        type=oid,
        label=label,
        pattern=table.regex("pattern", ".*"),
        required=table.bool("required", False),
        max=table.int("max", 1, minimum=1, maximum=64),
    )
    return rule


def _san(table: Table) -> SanPolicy:
    types = frozenset(
        table.choice(key_path, value, SanType)
        for key_path, value in table.str_items("types", ("dns", "ip"))
    )
    suffixes: list[str] = []
    for key_path, value in table.str_items("dns_suffixes", ()):
        if not _DNS_SUFFIX.fullmatch(value) or len(value) > 253:
            table.fail(key_path, f"{value!r} is not a lower-case DNS suffix like '.example.com'")
        suffixes.append(value)
    policy = SanPolicy(
        types=types,
        dns_suffixes=tuple(suffixes),
        dns_regex=tuple(table.regex_list("dns_regex")),
        uri_regex=tuple(table.regex_list("uri_regex")),
        max_count=table.int("max_count", 100, minimum=1, maximum=1000),
        required=table.bool("required", False),
        require_validated=table.bool("require_validated", False),
        allow_wildcards=table.bool("allow_wildcards", False),
    )
    if policy.required and not types:
        table.fail("required", "SANs are required but no SAN type is allowed")
    return policy


def _issuance(table: Table) -> IssuancePolicy:
    policy = IssuancePolicy(
        manager_approval=table.bool("manager_approval", False),
        renewal_requires_prior_signature=table.bool("renewal_requires_prior_signature", True),
        renewal_skips_approval=table.bool("renewal_skips_approval", True),
        early_renewal=table.bool("early_renewal", False),
    )
    return policy


def _permissions(table: Table) -> Permissions:
    entries: list[str] = []
    for key_path, value in table.str_items("enroll", None):
        if not value.strip() or value == "group:":
            table.fail(key_path, "must be a principal, 'group:NAME' or '*'")
        entries.append(value)
    return Permissions(enroll=tuple(entries))
