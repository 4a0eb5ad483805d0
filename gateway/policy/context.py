"""What policy rules look at, and what a rule is.

The pipeline is authorize -> check -> shape -> validate -> enforce. Authorize and check rules
see the :class:`Facts` (the request, its template, the clock); shaping turns the facts into a
:class:`Shaped` certificate (subject, SANs, validity, extensions), which validate and enforce
rules judge. A :class:`Rule` returns ``None`` to pass or a human reason; its ``effect`` says
whether that reason denies the request or sends it to a certificate manager.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPublicKeyTypes,
    CertificatePublicKeyTypes,
)

from gateway.errors import RuleCategory
from gateway.model import EnrollmentRequest, RequestKind
from gateway.pkix.memo import once
from gateway.policy.catalog import TemplateCatalog
from gateway.policy.extensions import TemplateExtension, read_template_extension
from gateway.policy.template import CertificateTemplate
from gateway.policy.vocabulary import KeyAlgorithm


class Stage(enum.StrEnum):
    """Pipeline stages, in order (cf. step-ca's validate -> modify -> enforce chain)."""

    AUTHORIZE = "authorize"
    CHECK = "check"
    SHAPE = "shape"
    VALIDATE = "validate"
    ENFORCE = "enforce"


class Effect(enum.StrEnum):
    """What a rule's reason does: deny the request, or hold it for approval (PEND_ALL_REQUESTS)."""

    DENY = "deny"
    PEND = "pend"


@dataclass(frozen=True)
class Facts:
    """The inputs of one policy evaluation. ``now`` and ``issuer_not_after`` are UTC-aware."""

    request: EnrollmentRequest
    template: CertificateTemplate
    catalog: TemplateCatalog
    now: datetime
    issuer_not_after: datetime | None
    approved: bool

    @property
    def csr(self) -> x509.CertificateSigningRequest:
        return self.request.csr

    @once
    def subject(self) -> x509.Name:
        """The CSR's subject, parsed once per evaluation (each ``csr.subject`` re-parses)."""
        return self.request.csr.subject

    @once
    def extensions(self) -> x509.Extensions:
        """The CSR's requested extensions, parsed once per evaluation."""
        return self.request.csr.extensions

    @once
    def public_key(self) -> CertificatePublicKeyTypes:
        """The CSR's public key, decoded once per evaluation (several rules need it).
        Raises ``ValueError``/``UnsupportedAlgorithm`` like ``csr.public_key()``."""
        key: CertificatePublicKeyTypes = self.request.public_key
        return key

    @property
    def is_renewal(self) -> bool:
        """A renewal signed with the prior certificate's key (not a re-enrollment)."""
        return self.request.kind is RequestKind.RENEWAL

    def prior_template(self) -> TemplateExtension | None:
        """The template extension of the prior certificate (``None`` if absent or malformed;
        rule ``renewal-template`` reports malformed ones)."""
        prior = self.request.prior_certificate
        if prior is None:
            return None
        try:
            return read_template_extension(prior)
        except ValueError:
            return None

    def prior_from_lineage(self) -> bool:
        """True if the prior certificate was issued under this template or one it supersedes:
        the condition under which a previous approval carries over (MS-CRTD §2.26, 0x40)."""
        ext = self.prior_template()
        if ext is None:
            return False
        if ext.oid == self.template.oid:
            return True
        old = self.catalog.by_template_oid(ext.oid)
        return old is not None and self.catalog.supersedes(self.template.name, old.name)


@dataclass(frozen=True)
class Shaped:
    """The certificate policy would issue, before validation; ``notes`` explain adjustments
    (clipped validity, dropped key usages)."""

    facts: Facts
    algorithm: KeyAlgorithm
    public_key: CertificateIssuerPublicKeyTypes
    subject: x509.Name
    sans: tuple[x509.GeneralName, ...]
    not_before: datetime
    not_after: datetime
    extensions: tuple[x509.Extension[x509.ExtensionType], ...]
    notes: tuple[str, ...] = ()

    @once
    def dns_names(self) -> tuple[str, ...]:
        """The dNSName SANs (several SAN rules read them)."""
        return tuple(san.value for san in self.sans if isinstance(san, x509.DNSName))


Context = TypeVar("Context", Facts, Shaped)


@dataclass(frozen=True)
class Rule(Generic[Context]):
    """A named policy rule: ``check`` returns ``None`` to pass or the reason for ``effect``.
    ``category`` (required) says what it judges; a denial carries it
    (:class:`gateway.errors.PolicyDenied`) and the protocols render denials by it."""

    name: str
    stage: Stage
    summary: str
    check: Callable[[Context], str | None]
    effect: Effect = Effect.DENY
    category: RuleCategory = field(kw_only=True)


def key_algorithm(key: CertificatePublicKeyTypes) -> KeyAlgorithm | None:
    """The template vocabulary name of ``key``'s type, or ``None`` for types certgate never
    certifies (DSA, X25519, X448)."""
    kind = type(key)
    if kind in _ALGORITHM_OF_TYPE:
        return _ALGORITHM_OF_TYPE[kind]
    found: KeyAlgorithm | None = None
    if isinstance(key, rsa.RSAPublicKey):
        found = KeyAlgorithm.RSA
    elif isinstance(key, ec.EllipticCurvePublicKey):
        found = KeyAlgorithm.EC
    elif isinstance(key, ed25519.Ed25519PublicKey):
        found = KeyAlgorithm.ED25519
    elif isinstance(key, ed448.Ed448PublicKey):
        found = KeyAlgorithm.ED448
    # isinstance() against these ABCs costs ~0.5 µs each and policy asks several times per
    # request: remember the answer per concrete key class (a handful of classes exist).
    _ALGORITHM_OF_TYPE[kind] = found
    return found


_ALGORITHM_OF_TYPE: dict[type, KeyAlgorithm | None] = {}
