"""The database schema as SQLAlchemy Core tables (no ORM: rows map to :mod:`gateway.model`).

The Alembic migrations under ``gateway/store/migrations/versions`` create exactly these tables;
``tests/contract/test_store.py`` checks that the two never drift apart.

Extending the schema (ACME accounts/orders/nonces, SCEP transactions, ...): a protocol package
declares its ``Table`` objects on :data:`metadata` (so the naming convention below applies),
adds a migration ``gateway/store/migrations/versions/<protocol>_000N_<topic>.py`` on its own
branch (first one: ``down_revision = "0001"``, ``branch_labels = ("<protocol>",)``; later ones
follow its own previous revision), and runs its queries through
:meth:`gateway.store.SQLStore.read` / :meth:`~gateway.store.SQLStore.write`, which execute a
plain synchronous Core function in one transaction on either backend.
``SQLStore.migrate()`` upgrades every branch (``alembic upgrade heads``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

#: Constraint/index names are part of the schema that migrations refer to; keep them stable.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend.

    PostgreSQL: ``timestamp with time zone``. SQLite has no datetime type: the value is stored
    as fixed-width ISO 8601 text (``2024-05-01T12:00:00.000000+00:00``) so that string order is
    chronological order and ``<=`` comparisons in SQL stay correct. Naive datetimes are refused
    rather than guessed at.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(32))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.isoformat(timespec="microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        if value.tzinfo is None:  # written by something else than this store
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: JSON everywhere, JSONB on PostgreSQL (indexable, compact).
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
#: SQLite only auto-increments an ``INTEGER PRIMARY KEY``.
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("protocol", sa.String(32), nullable=False),
    sa.Column("transaction_id", sa.String(255), nullable=False),
    sa.Column("template", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("requester", JSONType, nullable=False),
    sa.Column("requester_principal", sa.String(1024), nullable=False),
    sa.Column("csr_der", sa.LargeBinary(), nullable=False),
    sa.Column("spki_sha256", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("pending_reason", sa.String(16), nullable=True),
    sa.Column("connector", sa.String(255), nullable=True),
    sa.Column("ca_request_id", sa.String(255), nullable=True),
    sa.Column("denial_code", sa.String(64), nullable=True),
    sa.Column("denial_rule", sa.String(255), nullable=True),
    sa.Column("denial_detail", sa.Text(), nullable=True),
    sa.Column("certificate_serial", sa.String(64), nullable=True),
    sa.Column("prior_serial", sa.String(64), nullable=True),
    sa.Column("not_before", UTCDateTime(), nullable=True),
    sa.Column("not_after", UTCDateTime(), nullable=True),
    sa.Column("next_poll_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("protocol", "transaction_id"),
    # find_requests_by_key (EST retries, renewals): equality on all three.
    sa.Index(None, "requester_principal", "spki_sha256", "template"),
    # claim_due_polls and the approval queue (list_requests by state).
    sa.Index(None, "state", "next_poll_at"),
)

certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("serial", sa.String(64), primary_key=True),
    sa.Column("request_id", sa.String(36), sa.ForeignKey("requests.id"), nullable=True),
    sa.Column("subject", sa.Text(), nullable=False),
    sa.Column("sans", JSONType, nullable=False),
    sa.Column("template", sa.String(255), nullable=False),
    sa.Column("template_major", sa.Integer(), nullable=False),
    sa.Column("requester", sa.String(1024), nullable=False),
    sa.Column("not_before", UTCDateTime(), nullable=False),
    sa.Column("not_after", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("der", sa.LargeBinary(), nullable=False),
    sa.Column("spki_sha256", sa.String(64), nullable=False),
    sa.Column("issuer", sa.Text(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Column("revocation_reason", sa.Integer(), nullable=True),
    sa.Column("superseded_by", sa.String(64), nullable=True),
    sa.Index(None, "not_after"),
    # No index on request_id: lookups go request -> certificate_serial, and every index costs
    # a page write per issuance (the foreign key needs none; requests are never deleted).
    # CRLs read only the (few) revoked rows.
    sa.Index(
        "ix_certificates_revoked",
        "revoked_at",
        sqlite_where=sa.text("status = 'revoked'"),
        postgresql_where=sa.text("status = 'revoked'"),
    ),
)

#: Append-only: the store has no update/delete for it and triggers refuse both (migration 0001).
audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(1024), nullable=False),
    sa.Column("request_id", sa.String(36), nullable=True),
    sa.Column("serial", sa.String(64), nullable=True),
    sa.Column("detail", JSONType, nullable=False),
    sa.Index(None, "request_id"),
)

#: The local CA's durable request-id -> certificate record (:class:`gateway.ports.IssuanceJournal`).
#: No foreign key: a connector may journal ids the gateway's request table never saw.
ca_journal = sa.Table(
    "ca_journal",
    metadata,
    sa.Column("request_id", sa.String(255), primary_key=True),
    sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
