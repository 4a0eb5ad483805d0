"""The certificate template model, after AD CS certificate templates (MS-CRTD §2).

A :class:`CertificateTemplate` is what one ``conf/templates/<name>.toml`` file says, fully
validated (see :mod:`gateway.policy.loader`). Every part is a frozen dataclass; the attribute
each field imitates is named in its docstring so an AD CS administrator can map one to the other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from cryptography import x509

from gateway.model import Requester
from gateway.policy.vocabulary import (
    CA_ONLY_USAGES,
    KEY_USAGES,
    KeyAlgorithm,
    SanType,
    SubjectSource,
    parse_oid,
)

TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")

_NO_PARAMS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class KeyUsagePolicy:
    """Key usage and EKUs placed in every certificate (``pKIKeyUsage``, ``pKIExtendedKeyUsage``
    / ``msPKI-Certificate-Application-Policy``; RFC 5280 §4.2.1.3, §4.2.1.12).

    ``usages`` are ``x509.KeyUsage`` field names; an empty ``ekus`` omits the EKU extension.
    """

    usages: frozenset[str] = frozenset({"digital_signature", "key_encipherment"})
    critical: bool = True
    ekus: tuple[x509.ObjectIdentifier, ...] = ()

    def __post_init__(self) -> None:
        unknown = self.usages - set(KEY_USAGES)
        if unknown:
            raise ValueError(f"unknown key usages {sorted(unknown)}")
        if not self.usages:
            raise ValueError("at least one key usage is required")
        if self.usages & CA_ONLY_USAGES:
            raise ValueError("key_cert_sign and crl_sign are for CA certificates")
        if self.usages & {"encipher_only", "decipher_only"} and "key_agreement" not in self.usages:
            raise ValueError("encipher_only/decipher_only require key_agreement")


@dataclass(frozen=True)
class KeyPolicy:
    """Which public keys a CSR may carry (``msPKI-Minimal-Key-Size``, v4 algorithm list,
    ``msPKI-Private-Key-Flag`` REQUIRE_SAME_KEY_RENEWAL 0x80). Known-weak keys are refused
    whatever the policy says (rule ``key-weak``); ``relax_key_hygiene`` only lifts the
    non-security recommendation e <= 2^256 - 1 (BR §6.1.6)."""

    algorithms: frozenset[KeyAlgorithm] = frozenset({KeyAlgorithm.RSA, KeyAlgorithm.EC})
    min_rsa_bits: int = 2048
    curves: frozenset[str] = frozenset({"secp256r1", "secp384r1"})
    allow_sha1_signature: bool = False
    require_same_key_renewal: bool = False
    relax_key_hygiene: bool = False


@dataclass(frozen=True)
class RdnRule:
    """An allow rule for one RDN attribute type: values must full-match ``pattern``;
    ``required`` means at least one occurrence, ``max`` bounds the occurrences."""

    type: x509.ObjectIdentifier
    label: str
    pattern: re.Pattern[str] = re.compile(".*")
    required: bool = False
    max: int = 1

    def __post_init__(self) -> None:
        if self.max < 1:
            raise ValueError("max must be at least 1")


@dataclass(frozen=True)
class SubjectPolicy:
    """Subject rules (``msPKI-Certificate-Name-Flag``, MS-CRTD §2.28).

    Any RDN type without a rule in ``rdn`` is denied. ``cn_must_be_san`` is the CA/Browser
    Forum rule that a CN repeats one of the dNSName/iPAddress SANs.
    """

    source: SubjectSource = SubjectSource.REQUEST
    allow_empty: bool = True
    cn_must_be_san: bool = False
    rdn: tuple[RdnRule, ...] = ()

    def rule_for(self, oid: x509.ObjectIdentifier) -> RdnRule | None:
        """The rule for RDN type ``oid``, or ``None`` (the type is not allowed)."""
        for rule in self.rdn:
            if rule.type == oid:
                return rule
        return None


@dataclass(frozen=True)
class SanPolicy:
    """SubjectAltName rules (RFC 5280 §4.2.1.6; ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME).

    A DNS name must match one of ``dns_suffixes`` or ``dns_regex`` when either is non-empty;
    a URI must full-match one of ``uri_regex`` when it is non-empty. ``require_validated``
    makes every dns/ip SAN need a matching ``EnrollmentRequest.validated_identifiers`` entry.
    """

    types: frozenset[SanType] = frozenset({SanType.DNS, SanType.IP})
    dns_suffixes: tuple[str, ...] = ()
    dns_regex: tuple[re.Pattern[str], ...] = ()
    uri_regex: tuple[re.Pattern[str], ...] = ()
    max_count: int = 100
    required: bool = False
    require_validated: bool = False
    allow_wildcards: bool = False


@dataclass(frozen=True)
class IssuancePolicy:
    """Issuance requirements (``msPKI-Enrollment-Flag``, MS-CRTD §2.26).

    ``manager_approval`` is PEND_ALL_REQUESTS (0x2); ``renewal_skips_approval`` is
    PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT (0x40). ``early_renewal`` lets a renewal through
    before its renewal window opens.
    """

    manager_approval: bool = False
    renewal_requires_prior_signature: bool = True
    renewal_skips_approval: bool = True
    early_renewal: bool = False


@dataclass(frozen=True)
class Permissions:
    """Enrollment permissions: the gateway's analogue of the template's Enroll ACE
    (``nTSecurityDescriptor``). ``"*"`` is any authenticated requester; ``"group:NAME"``
    matches ``Requester.groups``; anything else matches ``Requester.principal`` exactly."""

    enroll: tuple[str, ...] = ()

    def permits(self, requester: Requester) -> bool:
        """True if ``requester`` may enroll for the template."""
        for entry in self.enroll:
            if entry == "*" or entry == requester.principal:
                return True
            if entry.startswith("group:") and entry[len("group:") :] in requester.groups:
                return True
        return False


@dataclass(frozen=True)
class CertificateTemplate:
    """One certificate template (MS-CRTD §2: ``cn``, ``msPKI-Cert-Template-OID``,
    ``revision``/``msPKI-Template-Minor-Revision``, ``pKIExpirationPeriod``,
    ``pKIOverlapPeriod``, ``msPKI-Supersede-Templates``, ...).

    ``oid``, ``major_version`` and ``minor_version`` go into the certificate template extension
    1.3.6.1.4.1.311.21.7. ``schema_version`` (1-4) is carried for CEP/XCEP rendering; certgate
    applies the same rules whatever its value. ``connector``/``connector_params`` name the CA
    connector and what it needs (e.g. the AD CS template name).
    """

    name: str
    oid: str
    validity: timedelta
    renewal_period: timedelta
    display_name: str = ""
    schema_version: int = 2
    major_version: int = 100
    minor_version: int = 0
    supersedes: tuple[str, ...] = ()
    connector: str = "local"
    connector_params: Mapping[str, str] = field(default_factory=lambda: _NO_PARAMS)
    key_usage: KeyUsagePolicy = KeyUsagePolicy()
    key_policy: KeyPolicy = KeyPolicy()
    subject: SubjectPolicy = SubjectPolicy()
    san: SanPolicy = SanPolicy()
    issuance: IssuancePolicy = IssuancePolicy()
    permissions: Permissions = Permissions()

    def __post_init__(self) -> None:
        if not TEMPLATE_NAME.fullmatch(self.name):
            raise ValueError(f"template name {self.name!r} must match [a-z0-9][a-z0-9-]*")
        parse_oid(self.oid)
        if not 1 <= self.schema_version <= 4:
            raise ValueError("schema_version must be 1..4")
        if self.major_version < 1 or self.minor_version < 0:
            raise ValueError("major_version must be >= 1 and minor_version >= 0")
        if self.renewal_period <= timedelta(0) or self.renewal_period >= self.validity:
            raise ValueError("renewal_period must be positive and shorter than validity")
        if self.name in self.supersedes:
            raise ValueError("a template cannot supersede itself")
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)
