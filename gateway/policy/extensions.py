"""End-entity extensions a plan carries, and the AD CS certificate template extension.

The template extension (OID 1.3.6.1.4.1.311.21.7, "szOID_CERTIFICATE_TEMPLATE") is
``SEQUENCE { templateID OBJECT IDENTIFIER, templateMajorVersion INTEGER OPTIONAL,
templateMinorVersion INTEGER OPTIONAL }`` (MS-WCCE §2.2.2.7.7.2). Renewal logic reads it back to
learn which template and which major version a certificate was issued under.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from asn1crypto import core
from cryptography import x509

from gateway.policy.template import CertificateTemplate, KeyUsagePolicy
from gateway.policy.vocabulary import KEY_USAGES, KeyAlgorithm

TEMPLATE_EXTENSION_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.21.7")

#: Key usages that make no sense for a key type, dropped from the template's set:
#: RFC 5480 §3 / RFC 8813 (EC keys never encipher), RFC 8410 §5 (EdDSA keys only sign).
UNSUPPORTED_USAGES: dict[KeyAlgorithm, frozenset[str]] = {
    KeyAlgorithm.RSA: frozenset(),
    KeyAlgorithm.EC: frozenset({"key_encipherment", "data_encipherment"}),
    KeyAlgorithm.ED25519: frozenset(
        {"key_encipherment", "data_encipherment", "key_agreement", "encipher_only", "decipher_only"}
    ),
    KeyAlgorithm.ED448: frozenset(
        {"key_encipherment", "data_encipherment", "key_agreement", "encipher_only", "decipher_only"}
    ),
}


class TemplateExtension(NamedTuple):
    """The decoded certificate template extension: ``(oid, major, minor)``."""

    oid: str
    major: int
    minor: int


class _CertificateTemplateOID(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("template_id", core.ObjectIdentifier),
        ("major_version", core.Integer, {"optional": True}),
        ("minor_version", core.Integer, {"optional": True}),
    ]


@functools.lru_cache(maxsize=256)
def encode_template_extension(oid: str, major: int, minor: int) -> bytes:
    """DER of the template extension value (MS-WCCE §2.2.2.7.7.2). Cached: it is constant per
    template version and asn1crypto encoding costs more than signing the certificate."""
    value = _CertificateTemplateOID(
        {"template_id": oid, "major_version": major, "minor_version": minor}
    )
    return bytes(value.dump())


def decode_template_extension(der: bytes) -> TemplateExtension:
    """Decode a template extension value; a missing version reads as 0. Raises ``ValueError``."""
    try:
        value = _CertificateTemplateOID.load(der, strict=True)
        oid = str(value["template_id"].dotted)
        major = value["major_version"].native
        minor = value["minor_version"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"malformed certificate template extension: {exc}") from exc
    return TemplateExtension(oid, int(major or 0), int(minor or 0))


def template_extension(template: CertificateTemplate) -> x509.Extension[x509.ExtensionType]:
    """The non-critical template extension naming ``template`` and its current version."""
    return _template_extension(template.oid, template.major_version, template.minor_version)


@functools.lru_cache(maxsize=256)
def _template_extension(oid: str, major: int, minor: int) -> x509.Extension[x509.ExtensionType]:
    der = encode_template_extension(oid, major, minor)
    return x509.Extension(
        TEMPLATE_EXTENSION_OID, False, x509.UnrecognizedExtension(TEMPLATE_EXTENSION_OID, der)
    )


def read_template_extension(cert: x509.Certificate) -> TemplateExtension | None:
    """``(oid, major, minor)`` from ``cert``'s template extension, or ``None`` without one.

    cryptography (>= 41) parses the extension itself as ``x509.MSCertificateTemplate``; the
    raw form is decoded here. Raises ``ValueError`` if the extension is malformed.
    """
    try:
        ext = cert.extensions.get_extension_for_oid(TEMPLATE_EXTENSION_OID)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    if isinstance(value, x509.MSCertificateTemplate):
        return TemplateExtension(
            value.template_id.dotted_string, value.major_version or 0, value.minor_version or 0
        )
    if isinstance(value, x509.UnrecognizedExtension):
        return decode_template_extension(value.value)
    raise ValueError(f"unexpected form of the certificate template extension: {value!r}")


def applicable_usages(policy: KeyUsagePolicy, algorithm: KeyAlgorithm) -> frozenset[str]:
    """The template's key usages minus those the key type cannot perform."""
    return policy.usages - UNSUPPORTED_USAGES[algorithm]


def key_usage_extension(
    usages: frozenset[str], critical: bool
) -> x509.Extension[x509.ExtensionType]:
    """KeyUsage (RFC 5280 §4.2.1.3) asserting exactly ``usages``."""
    flags = {name: name in usages for name in KEY_USAGES}
    return x509.Extension(x509.OID_KEY_USAGE, critical, x509.KeyUsage(**flags))


@functools.lru_cache(maxsize=256)
def _usage_extensions(
    policy: KeyUsagePolicy, algorithm: KeyAlgorithm
) -> tuple[x509.Extension[x509.ExtensionType], ...]:
    """BasicConstraints, KeyUsage and EKU: constant per template key-usage policy and key
    type, so built once (extension objects are immutable)."""
    extensions: list[x509.Extension[x509.ExtensionType]] = [
        x509.Extension(
            x509.OID_BASIC_CONSTRAINTS, True, x509.BasicConstraints(ca=False, path_length=None)
        )
    ]
    usages = applicable_usages(policy, algorithm)
    if usages:
        extensions.append(key_usage_extension(usages, policy.critical))
    if policy.ekus:
        extensions.append(
            x509.Extension(
                x509.OID_EXTENDED_KEY_USAGE, False, x509.ExtendedKeyUsage(list(policy.ekus))
            )
        )
    return tuple(extensions)


def end_entity_extensions(
    template: CertificateTemplate,
    algorithm: KeyAlgorithm,
    san: x509.SubjectAlternativeName | None,
    subject_empty: bool,
) -> tuple[x509.Extension[x509.ExtensionType], ...]:
    """The extensions policy chooses, in a stable order: BasicConstraints (critical, cA false),
    KeyUsage, ExtendedKeyUsage, SubjectAlternativeName (critical iff the subject is empty,
    RFC 5280 §4.2.1.6), the template extension. Issuer-bound extensions (SKI, AKI, CDP, AIA)
    are the connector's."""
    extensions = list(_usage_extensions(template.key_usage, algorithm))
    if san is not None:
        extensions.append(x509.Extension(x509.OID_SUBJECT_ALTERNATIVE_NAME, subject_empty, san))
    extensions.append(template_extension(template))
    return tuple(extensions)
