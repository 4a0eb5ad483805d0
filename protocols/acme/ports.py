"""What the ACME front-end uses of the core, declared by the front-end (its consumer).

:class:`protocols.acme.frontend.AcmeFrontEnd` narrows the
:class:`gateway.plugin.ProtocolContext` to :class:`AcmePorts` at start-up; the handlers (through
:class:`protocols.acme.base.Acme`) see nothing else. The shipped implementations are
:class:`gateway.service.EnrollmentService` (:class:`Enrollment`), the store (:class:`Records`,
and :class:`gateway.ports.Transactions` for ACME's own tables),
:class:`gateway.policy.PolicyEngine` (:class:`Templates`) and the gateway's clock
(:class:`Clock`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from cryptography import x509

from gateway.model import (
    CertificateRecord,
    EnrollmentRequest,
    Outcome,
    RevocationReason,
)
from gateway.policy import CertificateTemplate, PolicyDecision
from gateway.ports import Transactions


class RenewalWindow(Protocol):
    """When a certificate should be renewed (what :meth:`Enrollment.renewal_of` returns)."""

    @property
    def window_start(self) -> datetime:
        """The renewal window opens (timezone-aware UTC)."""
        ...

    @property
    def window_end(self) -> datetime:
        """The renewal window closes: the certificate's notAfter."""
        ...

    @property
    def reason(self) -> str:
        """Why the window is where it is (``"due"``, or an urgent reason such as a
        superseded template, which ARI answers with a window in the past)."""
        ...


@runtime_checkable
class Enrollment(Protocol):
    """The enrollment service, as far as ACME uses it."""

    async def enroll(self, request: EnrollmentRequest) -> Outcome:
        """Judge and, if allowed, issue the request of a finalize (RFC 8555 §7.4).
        Idempotent per (protocol, transaction id): a repeat returns the recorded outcome,
        never a second certificate. A refusal is a ``Denied`` outcome or
        :class:`gateway.errors.PolicyDenied`; ``Pending`` leaves the order ``processing``
        (§7.1.6) until the outcome is known."""
        ...

    async def find_transaction(self, protocol: str, transaction_id: str) -> Outcome | None:
        """The recorded outcome of (``protocol``, ``transaction_id``), or ``None`` if no such
        request was recorded (an order ``processing`` asks how its finalize ended)."""
        ...

    async def withdraw(self, request_id: str, actor: str, superseded_by: str) -> Outcome:
        """Take a request still awaiting approval out of the queue because the account asked
        again (``superseded_by`` names the newer request); audited as ``request.withdrawn``
        by ``actor``. Raises :class:`gateway.errors.Conflict` if it no longer awaits
        approval."""
        ...

    async def revoke(self, serial: str, reason: RevocationReason, actor: str) -> CertificateRecord:
        """Revoke certificate ``serial`` at its CA and in the inventory (revokeCert, RFC 8555
        §7.6; the CRL is built from the inventory)."""
        ...

    def renewal_of(self, record: CertificateRecord, now: datetime | None = None) -> RenewalWindow:
        """The renewal window of an inventory certificate (ACME Renewal Information, RFC
        9773 §4.2, is derived from it)."""
        ...

    async def ca_chain(self, connector: str | None = None) -> tuple[x509.Certificate, ...]:
        """The issuing chain of ``connector`` (the default CA when ``None``), issuing CA
        first: the chain after the end-entity certificate in a certificate download (RFC 8555
        §7.4.2)."""
        ...


@runtime_checkable
class Records(Protocol):
    """Certificate lookups in the gateway's inventory."""

    async def get_certificate(self, serial: str) -> CertificateRecord | None:
        """The inventory record of certificate ``serial`` (lower-case hex, no leading zeros),
        or ``None`` if this gateway never issued it (certificate download, revokeCert,
        ``replaces`` of a newOrder and renewalInfo: RFC 8555 §7.4.2, §7.6; RFC 9773)."""
        ...


@runtime_checkable
class Templates(Protocol):
    """The certificate templates ACME profiles name, and the policy's judgement of a
    request (read-only: judging records nothing)."""

    @property
    def templates(self) -> Mapping[str, CertificateTemplate]:
        """All templates by name (the directory's ``meta.profiles``)."""
        ...

    def template(self, name: str) -> CertificateTemplate:
        """The template called ``name``; raises :class:`gateway.errors.UnknownTemplate`."""
        ...

    def plan(
        self,
        request: EnrollmentRequest,
        *,
        request_id: str,
        now: datetime,
        issuer_not_after: datetime | None,
        approved: bool = False,
        check_possession: bool = True,
    ) -> PolicyDecision:
        """Judge ``request`` at ``now`` without recording anything (newOrder's dry run,
        with ``check_possession=False`` for its probe CSR only). Raises
        :class:`gateway.errors.PolicyDenied` or :class:`gateway.errors.UnknownTemplate`."""
        ...


@runtime_checkable
class Clock(Protocol):
    """The gateway's time (tests move it)."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


@dataclass(frozen=True)
class AcmePorts:
    """What the composition root hands the ACME front-end."""

    service: Enrollment
    records: Records
    templates: Templates
    clock: Clock
    #: ACME's own tables (accounts, orders, authorizations, nonces: RFC 8555 §7.1).
    transactions: Transactions
