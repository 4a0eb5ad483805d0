"""``certgate templates import --xcep URL``: AD CS templates (as MS-XCEP publishes them) ->
certgate template TOML files.

What maps (MS-CRTD attribute -> template key; flag values as in protocols.md 4.4):

* ``commonName`` -> ``connector_params.adcs_template`` (verbatim) and ``name`` (lower-cased,
  other characters as ``-``); ``oIDs`` default name -> ``display_name``; template OID -> ``oid``;
  ``policySchema``, ``revision`` -> ``schema_version``, ``major_version``/``minor_version``;
* ``certificateValidity`` -> ``validity``/``renewal_period``;
* ``minimalKeyLength`` -> ``key_policy.min_rsa_bits``; ``privateKeyFlags`` 0x80 ->
  ``require_same_key_renewal``;
* KeyUsage / EKU extensions -> ``[key_usage]``;
* ``subjectNameFlags`` ENROLLEE_SUPPLIES_SUBJECT -> ``subject.source = "request"`` (else
  ``"requester"``), ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME / SUBJECT_ALT_REQUIRE_DNS|EMAIL ->
  ``[san]``;
* ``enrollmentFlags`` PEND_ALL_REQUESTS -> ``manager_approval``,
  PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT -> ``renewal_skips_approval``;
* ``supersededPolicies`` -> ``supersedes`` (templates imported in the same run).

Everything else (other flag bits, other extensions, enrollment ACLs that CEP does not
publish, RDN rules) is reported per template in ``unmapped`` and written as comments at the top
of the file; nothing is dropped silently. Enrollment permissions default to nobody
(``enroll = []``): an imported template issues nothing until an operator grants it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta

from asn1crypto import x509 as asn1_x509

from gateway.codecs.ms.xcep import Policy, PolicyDocument
from gateway.policy import format_duration
from gateway.policy.vocabulary import EKUS

_NAME_FLAGS = {
    0x1: "ENROLLEE_SUPPLIES_SUBJECT",
    0x10000: "ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME",
    0x8: "OLD_CERT_SUPPLIES_SUBJECT_AND_ALT_NAME",
    0x400000: "SUBJECT_ALT_REQUIRE_DOMAIN_DNS",
    0x800000: "SUBJECT_ALT_REQUIRE_SPN",
    0x1000000: "SUBJECT_ALT_REQUIRE_DIRECTORY_GUID",
    0x2000000: "SUBJECT_ALT_REQUIRE_UPN",
    0x4000000: "SUBJECT_ALT_REQUIRE_EMAIL",
    0x8000000: "SUBJECT_ALT_REQUIRE_DNS",
    0x10000000: "SUBJECT_REQUIRE_DNS_AS_CN",
    0x20000000: "SUBJECT_REQUIRE_EMAIL",
    0x40000000: "SUBJECT_REQUIRE_COMMON_NAME",
    0x80000000: "SUBJECT_REQUIRE_DIRECTORY_PATH",
}
_NAME_MAPPED = 0x1 | 0x10000 | 0x4000000 | 0x8000000 | 0x40000000
_ENROLL_FLAGS = {
    0x1: "INCLUDE_SYMMETRIC_ALGORITHMS",
    0x2: "PEND_ALL_REQUESTS",
    0x4: "PUBLISH_TO_KRA_CONTAINER",
    0x8: "PUBLISH_TO_DS",
    0x10: "AUTO_ENROLLMENT_CHECK_USER_DS_CERTIFICATE",
    0x20: "AUTO_ENROLLMENT",
    0x40: "PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT",
    0x100: "USER_INTERACTION_REQUIRED",
    0x400: "REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE",
    0x800: "ALLOW_ENROLL_ON_BEHALF_OF",
    0x1000: "ADD_OCSP_NOCHECK",
    0x4000: "NOREVOCATIONINFOINISSUEDCERTS",
    0x8000: "INCLUDE_BASIC_CONSTRAINTS_FOR_EE_CERTS",
    0x10000: "ALLOW_PREVIOUS_APPROVAL_KEYBASEDRENEWAL_VALIDATE_REENROLLMENT",
    0x20000: "ISSUANCE_POLICIES_FROM_REQUEST",
    0x40000: "SKIP_AUTO_RENEWAL",
    0x80000: "NO_SECURITY_EXTENSION",
}
_ENROLL_MAPPED = 0x2 | 0x40
_KEY_FLAGS = {
    0x1: "REQUIRE_PRIVATE_KEY_ARCHIVAL",
    0x10: "EXPORTABLE_KEY",
    0x20: "STRONG_KEY_PROTECTION_REQUIRED",
    0x40: "REQUIRE_ALTERNATE_SIGNATURE_ALGORITHM",
    0x80: "REQUIRE_SAME_KEY_RENEWAL",
    0x100: "USE_LEGACY_PROVIDER",
    0x1000: "ATTEST_PREFERRED",
    0x2000: "ATTEST_REQUIRED",
}
#: Client-side key storage hints and the version nibbles: nothing for a gateway to enforce.
_KEY_CLIENT_SIDE = 0x10 | 0x100 | 0xF0000 | 0xF000000
_KEY_MAPPED = 0x80
_GENERAL_FLAGS = {
    0x2: "ADD_EMAIL",
    0x8: "PUBLISH_TO_DS",
    0x10: "EXPORTABLE_KEY",
    0x20: "AUTO_ENROLLMENT",
    0x40: "MACHINE_TYPE",
    0x80: "IS_CA",
    0x200: "ADD_TEMPLATE_NAME",
    0x800: "IS_CROSS_CA",
    0x1000: "DONOTPERSISTINDB",
    0x10000: "IS_DEFAULT",
    0x20000: "IS_MODIFIED",
}
#: Informational general flags (how AD CS itself stores the template).
_GENERAL_INFO = 0x10000 | 0x20000 | 0x200
_KU_NAMES = {"non_repudiation": "content_commitment"}
_EKU_NAMES = {oid.dotted_string: name for name, oid in EKUS.items()}


@dataclass(frozen=True)
class ImportedTemplate:
    """One template file to write, and what could not be expressed in it."""

    name: str
    adcs_name: str
    toml: str
    unmapped: tuple[str, ...] = field(default_factory=tuple)


def certgate_name(common_name: str) -> str:
    """An AD CS template CN as a certgate template name (``[a-z0-9][a-z0-9-]*``)."""
    name = re.sub(r"[^a-z0-9]+", "-", common_name.lower()).strip("-")
    return name or "template"


def import_policies(
    document: PolicyDocument, *, connector: str, source: str
) -> list[ImportedTemplate]:
    """Translate every policy of ``document`` (templates routed to ``connector``)."""
    names = {p.common_name: certgate_name(p.common_name) for p in document.policies}
    return [_translate(p, names, connector, source) for p in document.policies]


def _flags(value: int, table: dict[int, str], mapped: int, what: str, skip: int = 0) -> list[str]:
    out = []
    for bit in range(32):
        mask = 1 << bit
        if value & mask and not mask & (mapped | skip):
            out.append(f"{what} {table.get(mask, f'0x{mask:X}')} (0x{mask:X}) is not enforced")
    return out


def _translate(p: Policy, names: dict[str, str], connector: str, source: str) -> ImportedTemplate:
    unmapped: list[str] = ["enrollment permissions are not published by CEP: enroll = [] (nobody)"]
    name = names[p.common_name]
    oid = p.template_oid
    if not re.fullmatch(r"[0-2](\.[0-9]+)+", oid):
        unmapped.append(f"template OID {oid!r} is not a dotted OID; replace the placeholder")
        oid = "2.25.0"
    validity = max(p.validity_seconds, 1)
    renewal = p.renewal_seconds
    if not 0 < renewal < validity:
        unmapped.append(f"renewalPeriodSeconds {renewal} is not shorter than validity; using 20 %")
        renewal = max(validity // 5, 1)
    min_bits = p.minimal_key_length
    if min_bits < 1024:
        unmapped.append(f"minimalKeyLength {min_bits} (not an RSA size): min_rsa_bits = 2048")
        min_bits = 2048
    usages, ekus, critical = ["digital_signature", "key_encipherment"], [], True
    for ext in p.extensions:
        if ext.oid == "2.5.29.15":
            bits = asn1_x509.KeyUsage.load(ext.value).native
            usages = sorted(_KU_NAMES.get(b, b) for b in bits)
            critical = ext.critical
        elif ext.oid == "2.5.29.37":
            ekus = [
                _EKU_NAMES.get(o, o)
                for o in (x.dotted for x in asn1_x509.ExtKeyUsageSyntax.load(ext.value))
            ]
        else:
            unmapped.append(f"extension {ext.oid} is not added by certgate")
    supersedes = []
    for old in p.superseded:
        if old in names:
            supersedes.append(names[old])
        else:
            unmapped.append(f"supersedes {old!r}, which was not imported")
    flags = p.subject_name_flags
    subject_source = "request" if flags & 0x1 else "requester"
    san_types = []
    if flags & (0x10000 | 0x8000000):
        san_types.append("dns")
    if flags & 0x10000:
        san_types.append("ip")
    if flags & 0x4000000:
        san_types.append("email")
    san_required = bool(flags & (0x8000000 | 0x4000000))
    unmapped += _flags(flags, _NAME_FLAGS, _NAME_MAPPED, "subjectNameFlags")
    unmapped += _flags(p.enrollment_flags, _ENROLL_FLAGS, _ENROLL_MAPPED, "enrollmentFlags")
    unmapped += _flags(
        p.private_key_flags, _KEY_FLAGS, _KEY_MAPPED, "privateKeyFlags", _KEY_CLIENT_SIDE
    )
    unmapped += _flags(p.general_flags, _GENERAL_FLAGS, 0, "generalFlags", _GENERAL_INFO)
    if subject_source == "request":
        unmapped.append("CEP publishes no RDN rules: the subject may carry one CN of any value")
    q = json.dumps
    lines = [
        f"# Imported by certgate templates import from {source}",
        f"# (AD CS template {p.common_name!r}).",
        *(f"# NOT MAPPED: {item}" for item in unmapped),
        "",
        f"name = {q(name)}",
        f"display_name = {q(p.display_name or p.common_name)}",
        f"oid = {q(oid)}",
        f"schema_version = {min(max(p.schema, 1), 4)}",
        f"major_version = {max(p.major_revision, 1)}",
        f"minor_version = {p.minor_revision}",
        f"validity = {q(format_duration(timedelta(seconds=validity)))}",
        f"renewal_period = {q(format_duration(timedelta(seconds=renewal)))}",
        f"supersedes = {q(supersedes)}",
        f"connector = {q(connector)}",
        "",
        "[connector_params]",
        f"adcs_template = {q(p.common_name)}",
        "",
        "[key_usage]",
        f"usages = {q(usages)}",
        f"critical = {'true' if critical else 'false'}",
        f"ekus = {q(ekus)}",
        "",
        "[key_policy]",
        'algorithms = ["rsa", "ec"]',
        f"min_rsa_bits = {min_bits}",
        f"require_same_key_renewal = {'true' if p.private_key_flags & 0x80 else 'false'}",
        "",
        "[subject]",
        f"source = {q(subject_source)}",
        "allow_empty = true",
    ]
    if subject_source == "request":
        lines += ["", "[[subject.rdn]]", 'type = "CN"', 'pattern = ".{1,64}"', "max = 1"]
    lines += [
        "",
        "[san]",
        f"types = {q(san_types)}",
        f"required = {'true' if san_required else 'false'}",
        "",
        "[issuance]",
        f"manager_approval = {'true' if p.enrollment_flags & 0x2 else 'false'}",
        f"renewal_skips_approval = {'true' if p.enrollment_flags & 0x40 else 'false'}",
        "",
        "[permissions]",
        "enroll = []",
        "",
    ]
    return ImportedTemplate(name, p.common_name, "\n".join(lines), tuple(unmapped))
