"""What the SCEP front-end uses of the core, declared by the front-end (its consumer).

:mod:`protocols.scep.setup` narrows the :class:`gateway.plugin.ProtocolContext` to these at
start-up and hands the handlers nothing else. The shipped implementations are
:class:`gateway.service.EnrollmentService` (:class:`Enrollment`), the store (:class:`Records`,
:class:`OtpStore` and :class:`gateway.ports.Transactions`), :class:`gateway.policy.PolicyEngine`
(:class:`Templates`) and the gateway's clock (:class:`Clock`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from cryptography import x509

from gateway.model import AttemptHead, CertificateRecord, EnrollmentRequest, Outcome, RequestRecord
from gateway.policy import CertificateTemplate
from gateway.ports import Transactions
from gateway.service.retries import NextAttempt


@runtime_checkable
class Enrollment(Protocol):
    """The enrollment service, as far as SCEP uses it."""

    async def enroll(self, request: EnrollmentRequest, attempt: str | None = None) -> Outcome:
        """Judge and, if allowed, issue ``request`` (PKCSReq, RenewalReq: RFC 8894 §3.3.1,
        §3.3.1.2). Idempotent per (protocol, transaction id): a repeat returns the recorded
        outcome. A refusal is a ``Denied`` outcome or :class:`gateway.errors.PolicyDenied`
        (answered FAILURE with a failInfo, §3.3.2.2); ``Pending`` is answered PENDING.
        ``attempt``: the key :meth:`repeat_of` gave for a request judged afresh."""
        ...

    async def outcome_of(self, stored: RequestRecord) -> Outcome:
        """The recorded outcome of a stored request, from the store only (CertPoll and the
        retry of a PKCSReq, RFC 8894 §3.3.3, answer from it)."""
        ...

    async def repeat_of(
        self, protocol: str, transaction_id: str, csr: x509.CertificateSigningRequest
    ) -> Outcome | NextAttempt | None:
        """The recorded outcome if ``csr`` repeats a request already made under the
        transaction (a retransmission, RFC 8894 §3.2.1.1; one still ``received`` is
        resubmitted), None if the transaction is new, the key of its next attempt if ``csr``
        would be judged afresh. :class:`gateway.errors.Conflict` if the transaction belongs to
        another key or has a different request pending;
        :class:`gateway.service.retries.AttemptsUsedUp` if it has no attempts left
        (:mod:`protocols.scep.transactions` then opens the next generation)."""
        ...

    async def ca_chain(self, connector: str | None = None) -> tuple[x509.Certificate, ...]:
        """The issuing chain of ``connector`` (the default CA when ``None``), issuing CA
        first (GetCACert, RFC 8894 §4.2)."""
        ...

    async def crl(self, connector: str | None = None) -> bytes:
        """A fresh DER CRL of ``connector`` (GetCRL, RFC 8894 §3.3.4); raises
        :class:`gateway.errors.NotFound` if that CA publishes none."""
        ...


@runtime_checkable
class Records(Protocol):
    """Request and certificate lookups, and SCEP's own audit events."""

    async def get_certificate(self, serial: str) -> CertificateRecord | None:
        """The inventory record of certificate ``serial`` (lower-case hex, no leading zeros),
        or ``None`` if this gateway never issued it (GetCert, RFC 8894 §3.3.4; the signer of
        a RenewalReq, §3.3.1.2)."""
        ...

    async def get_request(self, request_id: str) -> RequestRecord | None:
        """The stored request with certgate id ``request_id``, or ``None``."""
        ...

    async def find_request(self, protocol: str, transaction_id: str) -> RequestRecord | None:
        """The stored request of (``protocol``, ``transaction_id``), or ``None`` (the
        transactionID of RFC 8894 §3.2.1.1 names one per attempt)."""
        ...

    async def find_attempts(
        self, protocol: str, transaction_ids: Sequence[str]
    ) -> dict[str, AttemptHead]:
        """:meth:`find_request` for several keys in one query (a transaction's attempts),
        with only what the retry logic reads of each (:class:`gateway.model.AttemptHead`)."""
        ...

    async def find_requests_by_key(
        self, protocol: str, principal: str, spki_sha256: str, template: str
    ) -> list[RequestRecord]:
        """Requests of ``protocol`` from ``principal`` for the same public key (SHA-256 of
        the SubjectPublicKeyInfo, hex) and template, newest first."""
        ...

    async def audit(
        self,
        event: str,
        actor: str,
        *,
        request_id: str | None = None,
        serial: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one event to the audit trail (refusals decided before the service records
        a request, the RA certificate's issuance)."""
        ...


@runtime_checkable
class OtpStore(Transactions, Protocol):
    """Where one-time challenge passwords live (RFC 8894 §7.3: stored hashed): SCEP's own
    table through :class:`gateway.ports.Transactions`, and the audit trail."""

    async def audit(
        self,
        event: str,
        actor: str,
        *,
        request_id: str | None = None,
        serial: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one event to the audit trail (``scep.otp.created``)."""
        ...


@runtime_checkable
class Templates(Protocol):
    """The certificate templates SCEP endpoints name (read-only)."""

    @property
    def templates(self) -> Mapping[str, CertificateTemplate]:
        """All templates by name (validating ``[scep.endpoints.*] template``)."""
        ...

    def template(self, name: str) -> CertificateTemplate:
        """The template called ``name``; raises :class:`gateway.errors.UnknownTemplate`."""
        ...


@runtime_checkable
class Clock(Protocol):
    """The gateway's time (tests move it)."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...
