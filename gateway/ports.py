"""Ports: the interfaces the core needs from the outside world (``typing.Protocol``).

``CAConnector`` is implemented by ``backends.*`` and found by entry-point name
(group ``certgate.connectors``); ``Store`` and ``Transactions`` are implemented by
:mod:`gateway.store`. Protocol front-ends declare what they use of these (and of the
enrollment service) in their own ``protocols/<p>/ports.py``; the composition root hands each
front-end only those objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, runtime_checkable

from cryptography import x509
from sqlalchemy.engine import Connection

from gateway.model import (
    AttemptHead,
    AuditEvent,
    CertificateRecord,
    CertificateStatus,
    ConnectorOutcome,
    Denied,
    IssuancePlan,
    Issued,
    PendingReason,
    RequestRecord,
    RequestState,
    RevocationReason,
)

P = ParamSpec("P")
T = TypeVar("T")

#: A transaction body: synchronous SQLAlchemy Core statements on ``conn``. It must not await,
#: must not mutate its arguments and must keep no state outside the database, because a write
#: body may run more than once (SQLite retries the whole body after ``SQLITE_BUSY``).
TransactionBody = Callable[Concatenate[Connection, P], T]


@runtime_checkable
class Transactions(Protocol):
    """Runs a front-end's own state (its tables in the gateway's database) in transactions.

    Implemented by :class:`gateway.store.SQLStore`; the composition root hands it to each
    front-end as ``ProtocolContext.transactions``. A database outage is raised as
    :class:`gateway.errors.StoreUnavailable` from either method, never as a driver error.
    """

    @property
    def dialect_name(self) -> str:
        """The SQL dialect bodies run on (``"sqlite"`` or ``"postgresql"``), fixed when the
        store opens: a front-end with a dialect-specific repository chooses it once from
        this, never per query."""
        ...

    @property
    def raw_sqlite(self) -> bool:
        """Whether the store runs its own state on the raw-SQLite repository (the fast path;
        false on PostgreSQL and when the store was opened with ``raw_sqlite=False``). A
        front-end with a raw-SQLite repository of its own chooses it only when this is true,
        once, with :attr:`dialect_name`, so its state and the core's follow one choice."""
        ...

    async def read(self, body: TransactionBody[P, T], *args: P.args, **kw: P.kwargs) -> T:
        """Run ``body(conn, *args, **kw)`` without an explicit transaction: each statement
        sees the latest commit. For single-statement reads; use :meth:`write` when several
        statements must see one snapshot or change anything together."""
        ...

    async def write(self, body: TransactionBody[P, T], *args: P.args, **kw: P.kwargs) -> T:
        """Run ``body(conn, *args, **kw)`` in one atomic write transaction and return its
        result: either all of its statements commit or none does. Writers are serialized on
        SQLite, and the body may run more than once there (see :data:`TransactionBody`)."""
        ...


@dataclass(frozen=True)
class OCSPSettings:
    """The gateway's OCSP responder (``[ocsp]`` in certgate.toml) as a connector sees it.

    ``url`` goes into the certificates the connector issues as the AIA id-ad-ocsp access
    location (RFC 5280 §4.2.2.1), or none when ``None``. ``delegated``: responses are signed
    by a responder certificate the CA issues for the purpose (id-kp-OCSPSigning and
    id-pkix-ocsp-nocheck, RFC 6960 §4.2.2.2 and §4.2.2.2.1), valid ``signer_validity`` and
    renewed ahead of expiry; false: by the CA key itself.
    """

    url: str | None = None
    delegated: bool = True
    signer_validity: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class ConnectorContext:
    """What the composition root hands a connector factory.

    ``settings`` is the connector's own table from the configuration (secret references already
    resolved by :func:`gateway.config.resolve_secret` where the connector asks for them);
    ``data_dir`` is the gateway's data directory; ``journal`` lets a connector that signs locally
    make ``submit`` idempotent per request id across crashes. ``publication_url`` is the base
    URL under which the gateway publishes this connector's CA certificates and CRL
    (``/ca/issuing.crt``, ``/ca/root.pem``, ``/ca/crl``), or ``None`` when it publishes none.
    ``startup_warnings`` is false when an operator command, not a serving gateway, opens the
    connector: advisories meant for the server's start-up log (such as a CA passphrase that was
    generated, not configured) are then left out. ``ocsp`` is the gateway's OCSP responder
    when it answers for this connector's certificates (:class:`OCSPCapable`), else ``None``.
    """

    name: str
    settings: Mapping[str, Any]
    data_dir: Path
    journal: IssuanceJournal
    config_file: str = "certgate.toml"
    publication_url: str | None = None
    startup_warnings: bool = True
    ocsp: OCSPSettings | None = None


class CAConnector(Protocol):
    """A CA with CES/WCCE semantics. A CA's refusal is a ``Denied`` value, not an exception;
    connectors raise only ``CAUnavailable`` (transient) or ``ConnectorError`` (permanent).

    ``submit`` MUST be idempotent per ``plan.request_id``: the service may resubmit a request
    after a crash, and the CA must then return the certificate it already issued for it.
    """

    name: str

    async def start(self) -> None:
        """Open resources (load or create keys, connection pools)."""

    async def close(self) -> None:
        """Release resources."""

    async def submit(self, plan: IssuancePlan) -> ConnectorOutcome: ...

    async def poll(self, ca_request_id: str) -> ConnectorOutcome: ...

    async def revoke(self, serial: int, reason: RevocationReason, when: datetime) -> None: ...

    async def ca_chain(self) -> tuple[x509.Certificate, ...]:
        """Issuing CA first, root last."""
        ...

    async def check(self) -> None:
        """Raise ``CAUnavailable`` if the CA cannot issue right now (readiness)."""


@runtime_checkable
class InProcessSigner(Protocol):
    """Optional capability of a CA that signs inside the gateway process (the local CA).

    When ``atomic_issuance`` is true the service signs with :meth:`sign` *before* anything is
    stored and then records the request, the certificate and their audit events in ONE
    transaction. There is no moment at which the CA has acted and the outcome is unrecorded:
    a crash before the commit loses only an in-memory signature that nobody has seen, so a
    retry of the transaction issues the one and only certificate. Connectors that talk to a
    CA with its own state (AD CS) never offer this: for them the request is recorded first.
    """

    atomic_issuance: bool

    def sign(self, plan: IssuancePlan) -> Issued | Denied: ...


@runtime_checkable
class CRLCapable(Protocol):
    """Optional capability: the connector can produce a CRL (DER)."""

    async def crl(self, revoked: Sequence[CertificateRecord]) -> bytes: ...


@dataclass(frozen=True)
class OCSPSigner:
    """Who signs OCSP responses about one CA's certificates (RFC 6960 §4.2.2.2).

    ``issuer`` is the CA whose certificates are answered for; ``responder`` the certificate
    whose key signs (a delegated responder certificate, or ``issuer`` itself), ``certs`` what
    a response carries to help verify it (the delegated certificate; nothing for the CA).
    ``sign`` signs the DER ResponseData with the responder key wherever it is kept (a file
    key in memory, a PKCS#11 token) and ``signature_algorithm`` is the DER
    AlgorithmIdentifier of its signatures. ``not_after``: no response may claim validity
    beyond it (the responder certificate's notAfter).
    """

    issuer: x509.Certificate
    responder: x509.Certificate
    certs: tuple[x509.Certificate, ...]
    signature_algorithm: bytes
    sign: Callable[[bytes], bytes]
    not_after: datetime
    #: True on the signer whose delegated certificate this process has just issued (the one
    #: process that issued it, under the CA directory's lock): the gateway records that
    #: issuance as an audit event (``ocsp.responder.issued``) exactly once.
    issued: bool = False


@runtime_checkable
class OCSPCapable(Protocol):
    """Optional capability: the connector's CA signs OCSP responses here (the local CA).

    A connector without it (AD CS over CES: its own OCSP responder answers for it) gets no
    responses from the gateway's ``/ocsp``.
    """

    async def ocsp_signer(self) -> OCSPSigner | None:
        """The current signer (a delegated responder certificate renewed here when due), or
        ``None`` when the connector has no OCSP responder configured
        (:attr:`ConnectorContext.ocsp`). Raises ``CAUnavailable`` when it cannot sign now."""
        ...


class ConnectorFactory(Protocol):
    def __call__(self, context: ConnectorContext) -> CAConnector: ...


class IssuanceJournal(Protocol):
    """Durable request-id -> certificate record for CAs that sign locally (the CA database)."""

    async def get(self, request_id: str) -> bytes | None: ...

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        """Record the certificate; if one is already recorded for the id, return that one."""
        ...


class Store(Protocol):
    """Requests, certificate inventory, revocations and the audit trail. Records facts, decides
    nothing. All datetimes are timezone-aware UTC."""

    # -- lifecycle
    async def migrate(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    # -- requests
    async def create_request(self, record: RequestRecord) -> tuple[RequestRecord, bool]:
        """Insert; if (protocol, transaction_id) exists return (existing, False)."""
        ...

    async def create_issued(
        self, record: RequestRecord, certificate: CertificateRecord, supersedes: str | None
    ) -> tuple[RequestRecord, bool]:
        """Insert a request already issued (``record.state`` issued) with its certificate,
        supersession and audit events in one transaction; on a (protocol, transaction_id)
        conflict write nothing and return ``(existing, False)``."""
        ...

    async def create_denied(self, record: RequestRecord) -> tuple[RequestRecord, bool]:
        """Insert a request already denied (``record.state`` denied, denial fields set) with
        its audit events in one transaction; conflict as :meth:`create_request`."""
        ...

    async def get_request(self, request_id: str) -> RequestRecord | None: ...

    async def find_request(self, protocol: str, transaction_id: str) -> RequestRecord | None: ...

    async def find_attempts(
        self, protocol: str, transaction_ids: Sequence[str]
    ) -> dict[str, AttemptHead]:
        """The requests stored under any of these exact (protocol, transaction key)s, by key,
        in one query, with only what the retry logic reads of each (:class:`AttemptHead`)."""
        ...

    async def list_requests(
        self, state: RequestState | None = None, limit: int = 100
    ) -> list[RequestRecord]: ...

    async def find_requests_by_key(
        self, protocol: str, principal: str, spki_sha256: str, template: str
    ) -> list[RequestRecord]:
        """Requests from the same identity for the same public key, newest first (EST retries)."""
        ...

    async def set_pending(
        self,
        request_id: str,
        reason: PendingReason,
        *,
        connector: str | None = None,
        ca_request_id: str | None = None,
        next_poll_at: datetime | None = None,
    ) -> RequestRecord: ...

    async def set_denied(
        self, request_id: str, code: str, detail: str, rule: str | None
    ) -> RequestRecord: ...

    async def set_failed(self, request_id: str, detail: str) -> RequestRecord: ...

    async def record_issued(
        self, request_id: str, certificate: CertificateRecord, supersedes: str | None = None
    ) -> RequestRecord:
        """Atomically: insert the certificate, mark the request issued, mark ``supersedes``
        superseded by the new serial, append a ``certificate.issued`` audit event."""
        ...

    async def claim_due_polls(
        self, now: datetime, lease_seconds: int, limit: int = 20
    ) -> list[RequestRecord]:
        """Claim CA-pending requests whose ``next_poll_at <= now`` and ``received`` requests
        last updated before ``now - lease_seconds`` (crash recovery), pushing their
        ``next_poll_at`` ``lease_seconds`` ahead so other instances skip them
        (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
        ...

    # -- certificates
    async def get_certificate(self, serial: str) -> CertificateRecord | None: ...

    async def list_certificates(
        self, status: CertificateStatus | None = None, limit: int = 1000
    ) -> list[CertificateRecord]: ...

    async def revoke_certificate(
        self, serial: str, reason: RevocationReason, when: datetime
    ) -> CertificateRecord: ...

    async def revoked_certificates(self) -> list[CertificateRecord]: ...

    # -- audit
    async def audit(
        self,
        event: str,
        actor: str,
        *,
        request_id: str | None = None,
        serial: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def audit_events(
        self, request_id: str | None = None, limit: int = 1000
    ) -> list[AuditEvent]: ...
