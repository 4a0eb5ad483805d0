"""Authorize and check rules: who may enroll, and whether the CSR itself is acceptable.

These rules see only :class:`~gateway.policy.context.Facts`. The CSR is attacker-controlled
and was parsed lazily by cryptography, so every access that can fail is made here first
(rule ``csr-format``) and turned into a denial instead of an exception.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from gateway.errors import RuleCategory
from gateway.model import RequestKind
from gateway.policy.context import Facts, Rule, Stage, key_algorithm
from gateway.policy.extensions import applicable_usages
from gateway.policy.weak_keys import weak_key_problems


def enroll_permission(facts: Facts) -> str | None:
    """The requester must hold an Enroll permission on the template (``permissions.enroll``)."""
    if facts.template.permissions.permits(facts.request.requester):
        return None
    return (
        f"requester {facts.request.requester.principal!r} is not permitted to enroll "
        f"for template {facts.template.name!r}"
    )


def superseded_template(facts: Facts) -> str | None:
    """A new enrollment for a superseded template is refused in favour of its successor
    (``msPKI-Supersede-Templates``); renewals and re-enrollments may still use it."""
    successors = facts.catalog.successors.get(facts.template.name, ())
    if not successors or facts.request.kind is not RequestKind.NEW:
        return None
    return (
        f"template {facts.template.name!r} is superseded by {', '.join(successors)}; "
        f"enroll for {successors[0]!r} instead"
    )


def csr_format(facts: Facts) -> str | None:
    """The CSR's subject, extensionRequest and public key must decode (RFC 2986 §4)."""
    try:
        _ = facts.subject
        _ = facts.extensions
        _ = facts.public_key
    except Exception as exc:  # attacker-controlled input: any decoding failure is a denial
        return f"the CSR cannot be decoded: {exc}"
    return None


def csr_signature(facts: Facts) -> str | None:
    """The CSR must be signed by the key it carries (proof of possession, RFC 2986 §3)."""
    if _signature_valid(facts):
        return None
    return "the CSR signature does not verify with the CSR's public key"


#: ECDSA signatures verified here with the key policy already decoded (RFC 5758 §3.2), and
#: ecdsa-with-SHA1, which cryptography 48 reports as invalid: Windows clients still send
#: SHA-1 signatures, and rule csr-signature-hash decides on SHA-1.
_ECDSA: dict[x509.ObjectIdentifier, ec.ECDSA] = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: ec.ECDSA(hashes.SHA256()),
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: ec.ECDSA(hashes.SHA384()),
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: ec.ECDSA(hashes.SHA512()),
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: ec.ECDSA(hashes.SHA1()),  # noqa: S303
}


def _signature_valid(facts: Facts) -> bool:
    csr = facts.csr
    try:
        algorithm = csr.signature_algorithm_oid
        key = facts.public_key
        ecdsa = _ECDSA.get(algorithm)
        if ecdsa is not None and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(csr.signature, csr.tbs_certrequest_bytes, ecdsa)
            return True
        if algorithm == SignatureAlgorithmOID.RSA_WITH_SHA1 and isinstance(key, rsa.RSAPublicKey):
            # reported as invalid by cryptography 48, like ecdsa-with-SHA1 (above)
            key.verify(csr.signature, csr.tbs_certrequest_bytes, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
            return True
        # everything else (RSA PKCS#1 v1.5 and PSS with SHA-2, EdDSA, mismatched key types)
        return bool(csr.is_signature_valid)
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return False


def csr_signature_hash(facts: Facts) -> str | None:
    """MD5 CSR signatures are never accepted; SHA-1 only if ``key_policy.allow_sha1_signature``
    (MS-WCCE clients sign with sha1WithRSA)."""
    try:
        digest = facts.csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return (
            f"unsupported CSR signature algorithm {facts.csr.signature_algorithm_oid.dotted_string}"
        )
    if isinstance(digest, hashes.MD5):
        return "the CSR is signed with MD5"
    if isinstance(digest, hashes.SHA1) and not facts.template.key_policy.allow_sha1_signature:
        return (
            f"the CSR is signed with SHA-1, which template {facts.template.name!r} does not "
            "allow (key_policy.allow_sha1_signature)"
        )
    return None


def key_algorithm_allowed(facts: Facts) -> str | None:
    """The public key type must be one of ``key_policy.algorithms``."""
    key = facts.public_key
    algorithm = key_algorithm(key)
    allowed = facts.template.key_policy.algorithms
    if algorithm is None:
        return f"{type(key).__name__.removeprefix('_')} keys cannot be certified"
    if algorithm not in allowed:
        return (
            f"{algorithm.value} keys are not allowed by template {facts.template.name!r} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    return None


def rsa_key_size(facts: Facts) -> str | None:
    """RSA keys must have at least ``key_policy.min_rsa_bits`` (``msPKI-Minimal-Key-Size``)."""
    key = facts.public_key
    minimum = facts.template.key_policy.min_rsa_bits
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < minimum:
        return f"RSA key has {key.key_size} bits; template {facts.template.name!r} needs {minimum}"
    return None


def key_weak(facts: Facts) -> str | None:
    """Known-weak keys are refused on every template (CA/B Forum BR §6.1.1.3, §6.1.6; see
    :mod:`gateway.policy.weak_keys`); ``key_policy.relax_key_hygiene`` relaxes only the
    recommended exponent upper bound, never a weakness."""
    problems = weak_key_problems(
        facts.public_key, relax_key_hygiene=facts.template.key_policy.relax_key_hygiene
    )
    return "; ".join(problems) if problems else None


def ec_curve(facts: Facts) -> str | None:
    """EC keys must be on one of ``key_policy.curves``."""
    key = facts.public_key
    curves = facts.template.key_policy.curves
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in curves:
        return (
            f"EC curve {key.curve.name} is not allowed by template {facts.template.name!r} "
            f"(allowed: {', '.join(sorted(curves))})"
        )
    return None


def key_usage_applicable(facts: Facts) -> str | None:
    """At least one of the template's key usages must make sense for the key type (an EC key
    cannot encipher, RFC 5480 §3; an EdDSA key only signs, RFC 8410 §5)."""
    algorithm = key_algorithm(facts.public_key)
    if algorithm is None or applicable_usages(facts.template.key_usage, algorithm):
        return None
    usages = ", ".join(sorted(facts.template.key_usage.usages))
    return (
        f"none of template {facts.template.name!r}'s key usages ({usages}) "
        f"applies to an {algorithm.value} key"
    )


AUTHORIZE_RULES: tuple[Rule[Facts], ...] = (
    Rule(
        "enroll-permission",
        Stage.AUTHORIZE,
        "requester holds Enroll",
        enroll_permission,
        category=RuleCategory.REQUESTER,
    ),
    Rule(
        "superseded-template",
        Stage.AUTHORIZE,
        "no new certs of a superseded template",
        superseded_template,
        category=RuleCategory.ISSUANCE,
    ),
)

CHECK_RULES: tuple[Rule[Facts], ...] = (
    Rule("csr-format", Stage.CHECK, "CSR decodes", csr_format, category=RuleCategory.CSR),
    Rule(
        "csr-signature",
        Stage.CHECK,
        "CSR proves key possession",
        csr_signature,
        category=RuleCategory.CSR,
    ),
    Rule(
        "csr-signature-hash",
        Stage.CHECK,
        "no MD5; SHA-1 only if allowed",
        csr_signature_hash,
        category=RuleCategory.CSR,
    ),
    Rule(
        "key-algorithm",
        Stage.CHECK,
        "key type allowed",
        key_algorithm_allowed,
        category=RuleCategory.CSR,
    ),
    Rule(
        "rsa-key-size",
        Stage.CHECK,
        "RSA modulus large enough",
        rsa_key_size,
        category=RuleCategory.CSR,
    ),
    Rule(
        "key-weak",
        Stage.CHECK,
        "no known-weak key (BR 6.1.1.3)",
        key_weak,
        category=RuleCategory.CSR,
    ),
    Rule("ec-curve", Stage.CHECK, "EC curve allowed", ec_curve, category=RuleCategory.CSR),
    Rule(
        "key-usage",
        Stage.CHECK,
        "template key usage fits the key type",
        key_usage_applicable,
        category=RuleCategory.CSR,
    ),
)
