"""What the MS-XCEP/MS-WSTEP front-end uses of the core, declared by the front-end.

:class:`protocols.wstep.frontend.WSTEPFrontEnd` narrows the
:class:`gateway.plugin.ProtocolContext` to a :class:`WstepContext` of these ports at start-up;
the CEP and CES handlers see nothing else. The shipped implementations are
:class:`gateway.service.EnrollmentService` (:class:`Enrollment`), the store (:class:`Records`,
and :class:`gateway.ports.Transactions` for the front-end's own tables) and
:class:`gateway.policy.PolicyEngine` (:class:`Templates`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cryptography import x509

from gateway.model import CertificateRecord, EnrollmentRequest, Outcome, RequestRecord
from gateway.policy import CertificateTemplate, TemplateCatalog


@runtime_checkable
class Enrollment(Protocol):
    """The enrollment service, as far as CEP and CES use it."""

    async def enroll(self, request: EnrollmentRequest) -> Outcome:
        """Judge and, if allowed, issue ``request`` (RequestSecurityToken, MS-WSTEP
        §3.1.4.1). Idempotent per (protocol, transaction id): a repeat returns the recorded
        outcome. A refusal is a ``Denied`` outcome or :class:`gateway.errors.PolicyDenied`
        (a SOAP fault with the HRESULT AD CS would give); ``Pending`` is answered with a
        RequestID to query later (MS-WSTEP §3.1.4.1.4)."""
        ...

    async def outcome_of(self, stored: RequestRecord) -> Outcome:
        """The recorded outcome of a stored request, from the store only (a query by
        RequestID, MS-WSTEP §3.1.4.1.3.3)."""
        ...

    async def request_id_of(self, protocol: str, transaction_id: str, outcome: Outcome) -> str:
        """The id of the request ``outcome`` of the transaction is the outcome of ('' if none
        was recorded): the RequestID an answer carries (MS-WSTEP §3.1.4.1.4). A different CSR
        under the same transaction id is another attempt (:mod:`gateway.service.retries`), so
        the transaction id alone does not name it."""
        ...

    async def ca_chain(self, connector: str | None = None) -> tuple[x509.Certificate, ...]:
        """The issuing chain of ``connector`` (the default CA when ``None``), issuing CA
        first (the CAs GetPolicies lists, MS-XCEP §3.1.4.1.3.2; the TLS listener's chain)."""
        ...


@runtime_checkable
class Records(Protocol):
    """Request and certificate lookups, and the front-end's own audit events."""

    async def get_certificate(self, serial: str) -> CertificateRecord | None:
        """The inventory record of certificate ``serial`` (lower-case hex, no leading zeros),
        or ``None`` if this gateway never issued it (TLS client certificates, renewal
        signers: MS-WSTEP §3.1.4.2.1.1)."""
        ...

    async def get_request(self, request_id: str) -> RequestRecord | None:
        """The stored request with certgate id ``request_id``, or ``None``."""
        ...

    async def find_request(self, protocol: str, transaction_id: str) -> RequestRecord | None:
        """The stored request of (``protocol``, ``transaction_id``), or ``None``."""
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
        """Append one event to the audit trail (``wstep.request.refused``)."""
        ...


@runtime_checkable
class Templates(Protocol):
    """The certificate templates CEP publishes and CES enrolls under (read-only)."""

    @property
    def templates(self) -> Mapping[str, CertificateTemplate]:
        """All templates by name (GetPolicies lists each, MS-XCEP §3.1.4.1)."""
        ...

    @property
    def catalog(self) -> TemplateCatalog:
        """The templates with their name and OID indexes (a CSR's certificate template
        extension, MS-WCCE §2.2.2.7.7.2, names its template by OID)."""
        ...


@dataclass(frozen=True)
class WstepContext:
    """What the CEP and CES handlers may use: the ports above and the configured default
    template (for a request that names none)."""

    service: Enrollment
    store: Records
    policy: Templates
    default_template: str
