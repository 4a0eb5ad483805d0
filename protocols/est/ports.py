"""What the EST front-end uses of the core, declared by the front-end (its consumer).

:class:`protocols.est.frontend.EstFrontEnd` narrows the :class:`gateway.plugin.ProtocolContext`
to these at start-up; handlers see nothing else. The shipped implementations are
:class:`gateway.service.EnrollmentService` (:class:`Enrollment`), the store
(:class:`Records`, and :class:`gateway.ports.Transactions` for EST's own tables),
:class:`gateway.policy.PolicyEngine` (:class:`Templates`) and the gateway's clock
(:class:`Clock`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from cryptography import x509

from gateway.model import AttemptHead, CertificateRecord, EnrollmentRequest, Outcome, RequestRecord
from gateway.policy import CertificateTemplate, TemplateCatalog


@runtime_checkable
class Enrollment(Protocol):
    """The enrollment service, as far as EST uses it."""

    async def enroll(self, request: EnrollmentRequest, attempt: str | None = None) -> Outcome:
        """Judge and, if allowed, issue ``request`` (simpleenroll, simplereenroll and
        serverkeygen, RFC 7030 §4.2 and §4.4). Idempotent per (protocol, transaction id): a
        repeat returns the recorded outcome, never a second certificate. A refusal is a
        ``Denied`` outcome or :class:`gateway.errors.PolicyDenied`; a request waiting for a
        certificate manager or the CA is ``Pending`` (answered 202 + Retry-After, §4.2.3).
        ``attempt``: the transaction's next attempt key, when EST already read its attempts."""
        ...

    async def ca_chain(self, connector: str | None = None) -> tuple[x509.Certificate, ...]:
        """The issuing chain of ``connector`` (the default CA when ``None``), issuing CA
        first: the body of /cacerts (RFC 7030 §4.1.3) and the listener's trust anchors."""
        ...


@runtime_checkable
class Records(Protocol):
    """Request and certificate lookups, and EST's own audit events."""

    async def get_certificate(self, serial: str) -> CertificateRecord | None:
        """The inventory record of certificate ``serial`` (lower-case hex, no leading zeros),
        or ``None`` if this gateway never issued it (simplereenroll's client certificate,
        RFC 7030 §4.2.2)."""
        ...

    async def find_request(self, protocol: str, transaction_id: str) -> RequestRecord | None:
        """The request stored under exactly this (protocol, transaction key), if any: how
        :mod:`protocols.est.transactions` finds the generations and attempts of the
        transaction it derives (RFC 7030 §4.2.3 retries; :mod:`gateway.service.retries`)."""
        ...

    async def find_attempts(
        self, protocol: str, transaction_ids: Sequence[str]
    ) -> dict[str, AttemptHead]:
        """The requests stored under any of these exact keys, by key: :meth:`find_request`
        for several keys in one query (a new enrollment's generation 0 of both id forms),
        with only what the retry logic reads of each (:class:`gateway.model.AttemptHead`)."""
        ...

    async def get_request(self, request_id: str) -> RequestRecord | None:
        """The request with certgate id ``request_id``, if any (the stored transaction key of
        a request that answered 202, for EST's delivery bookkeeping)."""
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
        """Append one event to the audit trail (refusals EST decides before the service
        records a request, such as ``est.request.refused``)."""
        ...


@runtime_checkable
class Templates(Protocol):
    """The certificate templates EST labels name (read-only)."""

    @property
    def templates(self) -> Mapping[str, CertificateTemplate]:
        """All templates by name (validating ``[est.labels.*] template``)."""
        ...

    @property
    def catalog(self) -> TemplateCatalog:
        """The templates with their name, OID and successor indexes (policy facts)."""
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
