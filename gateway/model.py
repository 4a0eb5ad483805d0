"""Protocol-neutral value objects that flow from a front-end through policy to a CA connector.

Nothing here knows about SCEP, EST, ACME or any CA product. Every object is a frozen dataclass;
build variations with :func:`dataclasses.replace`. Derived values that cost something (a CSR's
DER, key and fingerprint; a requester's JSON) are computed by :mod:`gateway.pkix.csr` and kept
with :class:`gateway.pkix.memo.once`; no cache machinery lives here.
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from gateway.pkix.csr import csr_der, csr_public_key, csr_spki_sha256
from gateway.pkix.memo import once

_EMPTY: Mapping[str, str] = MappingProxyType({})


class RequestKind(enum.StrEnum):
    """Why a certificate is requested (AD CS: new enrollment, renewal, re-enrollment)."""

    NEW = "new"
    #: Same subject, signed with the prior certificate's key (EST simplereenroll, SCEP RenewalReq).
    RENEWAL = "renewal"
    #: A new certificate replacing a prior one, authenticated some other way (ACME `replaces`).
    REENROLLMENT = "re-enrollment"


class RequestState(enum.StrEnum):
    """The request state machine: received -> pending -> issued | denied | failed.

    ``received`` is written before the CA sees the request, so a crash leaves a visible record.
    """

    RECEIVED = "received"
    PENDING = "pending"
    ISSUED = "issued"
    DENIED = "denied"
    FAILED = "failed"


class PendingReason(enum.StrEnum):
    """Who a pending request is waiting for."""

    APPROVAL = "approval"  # a certificate manager (template requires approval)
    CA = "ca"  # the CA connector answered "under submission"


class CertificateStatus(enum.StrEnum):
    VALID = "valid"
    REVOKED = "revoked"


class RevocationReason(enum.IntEnum):
    """RFC 5280 §5.3.1 CRLReason codes (7 is unused)."""

    UNSPECIFIED = 0
    KEY_COMPROMISE = 1
    CA_COMPROMISE = 2
    AFFILIATION_CHANGED = 3
    SUPERSEDED = 4
    CESSATION_OF_OPERATION = 5
    CERTIFICATE_HOLD = 6
    REMOVE_FROM_CRL = 8
    PRIVILEGE_WITHDRAWN = 9
    AA_COMPROMISE = 10

    @property
    def x509_flag(self) -> x509.ReasonFlags:
        return _REASON_FLAGS[self]


_REASON_FLAGS = {
    RevocationReason.UNSPECIFIED: x509.ReasonFlags.unspecified,
    RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    RevocationReason.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
    RevocationReason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
    RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.CERTIFICATE_HOLD: x509.ReasonFlags.certificate_hold,
    RevocationReason.REMOVE_FROM_CRL: x509.ReasonFlags.remove_from_crl,
    RevocationReason.PRIVILEGE_WITHDRAWN: x509.ReasonFlags.privilege_withdrawn,
    RevocationReason.AA_COMPROMISE: x509.ReasonFlags.aa_compromise,
}


@dataclass(frozen=True)
class Identifier:
    """A name a front-end proved control of (ACME: dns or ip identifier, RFC 8555 §9.7.7)."""

    type: str  # "dns" | "ip"
    value: str


@dataclass(frozen=True)
class Requester:
    """Who is asking, with only the facts the front-end actually verified.

    ``principal`` is what template enrollment permissions are checked against; ``groups`` are
    extra principals (e.g. an EAB key's group, an EST label's bootstrap group).
    """

    protocol: str  # "cli", "est", "scep", "acme", "wstep", ...
    principal: str
    auth_method: str  # "local", "tls-client-cert", "basic", "challenge", "eab", ...
    groups: frozenset[str] = frozenset()
    verified_facts: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "principal": self.principal,
            "auth_method": self.auth_method,
            "groups": sorted(self.groups),
            "verified_facts": dict(self.verified_facts),
        }

    @once
    def json_text(self) -> str:
        """:meth:`to_json` as JSON text, encoded once (every stored request carries it)."""
        return json.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Requester:
        return cls(
            protocol=str(data["protocol"]),
            principal=str(data["principal"]),
            auth_method=str(data["auth_method"]),
            groups=frozenset(data.get("groups", ())),
            verified_facts=MappingProxyType(dict(data.get("verified_facts", {}))),
        )


@dataclass(frozen=True)
class EnrollmentRequest:
    """One protocol-neutral certificate request.

    ``csr`` has been parsed but *not* judged: its signature is checked by policy (rule
    ``csr-signature``). ``validated_identifiers`` are names a challenge proved (ACME);
    ``prior_certificate`` is the certificate a renewal was authenticated with, already verified
    by the front-end to chain to this CA. ``not_before``/``not_after`` are what the client asked
    for (ACME newOrder); policy clips or refuses them.
    """

    csr: x509.CertificateSigningRequest
    template: str
    requester: Requester
    transaction_id: str
    kind: RequestKind = RequestKind.NEW
    validated_identifiers: frozenset[Identifier] = frozenset()
    prior_certificate: x509.Certificate | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None

    @once
    def csr_der(self) -> bytes:
        """The CSR as DER (copied out of cryptography's object once)."""
        return csr_der(self.csr)

    @once
    def public_key(self) -> Any:
        """The CSR's public key, decoded once per request (policy and the fingerprint both
        need it). Raises ``ValueError``/``UnsupportedAlgorithm`` like ``csr.public_key()``."""
        return csr_public_key(self.csr)

    @once
    def spki_sha256(self) -> str:
        """Hex SHA-256 of the CSR's SubjectPublicKeyInfo (computed once)."""
        return csr_spki_sha256(self.csr)


@dataclass(frozen=True)
class IssuancePlan:
    """Everything the CA needs and nothing it must decide: the CA signs exactly this.

    ``extensions`` are the end-entity extensions policy chose (key usage, EKU, basic constraints,
    SAN, the AD CS template extension, ...). The connector adds only issuer-bound extensions
    (AKI, CDP, AIA) and SKI. ``csr`` travels untouched for connectors whose CA re-checks it
    (AD CS via CES).
    """

    request_id: str
    template: str
    template_oid: str
    template_major: int
    template_minor: int
    connector: str
    subject: x509.Name
    public_key: CertificateIssuerPublicKeyTypes
    not_before: datetime
    not_after: datetime
    extensions: tuple[x509.Extension[x509.ExtensionType], ...]
    csr: x509.CertificateSigningRequest
    connector_params: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        if self.not_after <= self.not_before:
            raise ValueError("IssuancePlan: not_after must be after not_before")
        if self.not_before.tzinfo is None or self.not_after.tzinfo is None:
            raise ValueError("IssuancePlan: validity must be timezone-aware")

    @property
    def sans(self) -> tuple[x509.GeneralName, ...]:
        for ext in self.extensions:
            if isinstance(ext.value, x509.SubjectAlternativeName):
                return tuple(ext.value)
        return ()


# --- outcomes (MS-WCCE dispositions: issued / under submission / denied) -------------------


@dataclass(frozen=True)
class Issued:
    """The CA issued ``certificate``; ``chain`` is the issuer chain up to (and incl.) the root."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    #: ``certificate`` as DER, when the connector has the bytes at hand (saves an encoding)
    certificate_der: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def der(self) -> bytes:
        """The certificate as DER."""
        if self.certificate_der is not None:
            return self.certificate_der
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def full_chain(self) -> tuple[x509.Certificate, ...]:
        return (self.certificate, *self.chain)


@dataclass(frozen=True)
class Pending:
    """Under submission: poll later by ``request_id`` (certgate's id, not the CA's)."""

    request_id: str
    retry_after: int = 60
    reason: PendingReason = PendingReason.APPROVAL


@dataclass(frozen=True)
class Denied:
    """Refused. ``code`` is an :class:`gateway.errors.ErrorCode` value; ``rule`` names the policy
    rule (or ``"ca"`` when the CA itself refused)."""

    code: str
    detail: str
    rule: str | None = None


Outcome = Issued | Pending | Denied


@dataclass(frozen=True)
class ConnectorPending:
    """What a connector returns when the CA put a request under submission; ``ca_request_id``
    is the CA's own handle (the CES RequestID), stored so the poller can ask again."""

    ca_request_id: str
    retry_after: int = 60


ConnectorOutcome = Issued | ConnectorPending | Denied


# --- store records -----------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRecord:
    """A stored enrollment request (one row per (protocol, transaction_id))."""

    id: str
    protocol: str
    transaction_id: str
    template: str
    kind: RequestKind
    requester: Requester
    csr_der: bytes
    spki_sha256: str
    state: RequestState
    created_at: datetime
    updated_at: datetime
    pending_reason: PendingReason | None = None
    connector: str | None = None
    ca_request_id: str | None = None
    denial_code: str | None = None
    denial_rule: str | None = None
    denial_detail: str | None = None
    certificate_serial: str | None = None
    prior_serial: str | None = None
    not_before: datetime | None = None  # client-requested validity (ACME), if any
    not_after: datetime | None = None
    next_poll_at: datetime | None = None


class AttemptHead(NamedTuple):
    """What the retry logic reads of each stored attempt of a transaction
    (:mod:`gateway.service.retries`): its CSR (is a request a repeat of it?), its state (is it
    still waiting?), its key (whose transaction is it?) and when it was last answered. The
    whole :class:`RequestRecord` is read only for the attempt a repeat is answered from. Why:
    a client that keeps its key enrols into the same transaction again and again, and every
    enrollment read and decoded all of its attempts' rows in full (23 columns, the requester's
    JSON) to look at these."""

    id: str
    transaction_id: str
    state: RequestState
    pending_reason: PendingReason | None
    csr_der: bytes
    spki_sha256: str
    updated_at: datetime


@dataclass(frozen=True)
class CertificateRecord:
    """One issued certificate in the inventory. ``serial`` is lower-case hex without leading
    zeros stripped beyond what ``format(n, 'x')`` gives."""

    serial: str
    request_id: str | None
    subject: str
    sans: tuple[str, ...]
    template: str
    template_major: int
    requester: str
    not_before: datetime
    not_after: datetime
    status: CertificateStatus
    der: bytes
    spki_sha256: str
    issuer: str
    revoked_at: datetime | None = None
    revocation_reason: RevocationReason | None = None
    superseded_by: str | None = None

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)


@dataclass(frozen=True)
class AuditEvent:
    """An append-only audit fact. ``detail`` never holds secrets."""

    id: int
    at: datetime
    event: str  # e.g. "request.received", "certificate.issued", "certificate.revoked"
    actor: str
    request_id: str | None
    serial: str | None
    detail: Mapping[str, Any]


def new_request_id() -> str:
    """A fresh request id: a UUIDv7 (RFC 9562 §5.7), 48 bits of Unix milliseconds then 74
    random bits. Time-ordered ids append to the right edge of every index keyed by request
    id (the requests primary key, audit events by request), so an SQLite group commit
    writes one index page for a whole batch instead of one random page per request."""
    rand = int.from_bytes(os.urandom(10), "big")  # one system call for all 74 random bits
    value = (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76
        | (rand >> 62 & 0xFFF) << 64
        | 0b10 << 62
        | (rand & (1 << 62) - 1)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def serial_hex(serial: int) -> str:
    """Canonical inventory form of a certificate serial number."""
    return format(serial, "x")
