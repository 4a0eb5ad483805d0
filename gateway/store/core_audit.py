"""The audit trail in SQLAlchemy Core: append, list, search, show.

Part of :class:`gateway.store.repository.CoreQueries`; the request and inventory bodies append
their events through :meth:`AuditQueries.append_audit`. Every single-row INSERT the bodies
share goes through :meth:`AuditQueries.insert_row`, the one statement the raw-SQLite
repository replaces for them (:mod:`gateway.store.sqlite_queries`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.model import AuditEvent
from gateway.store.rows import audit_from_row
from gateway.store.tables import audit_events, ca_journal, requests

#: Who the gateway's own transitions are attributed to in the audit trail.
SYSTEM_ACTOR = "certgate"

#: The INSERT of each table whose rows go through :meth:`AuditQueries.insert_row`.
_INSERTS = {table: sa.insert(table) for table in (audit_events, requests, ca_journal)}


def audit_row(
    now: datetime,
    event: str,
    actor: str,
    request_id: str | None,
    serial: str | None,
    detail: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """One ``audit_events`` row as column -> Python value (``id`` is the database's)."""
    return {
        "at": now,
        "event": event,
        "actor": actor,
        "request_id": request_id,
        "serial": serial,
        "detail": dict(detail or {}),
    }


class AuditQueries:
    """Audit bodies; each is ``body(conn, ...)`` run in one transaction by the engine."""

    def insert_row(self, conn: Connection, table: sa.Table, values: Mapping[str, Any]) -> None:
        """INSERT one row (column -> Python value) into ``table`` (``audit_events``,
        ``requests`` or ``ca_journal``); a constraint violation raises ``IntegrityError``."""
        conn.execute(_INSERTS[table], values)

    def append_audit(
        self,
        conn: Connection,
        now: datetime,
        event: str,
        actor: str,
        request_id: str | None = None,
        serial: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one event; the trail is append-only (the schema refuses UPDATE/DELETE)."""
        row = audit_row(now, event, actor, request_id, serial, detail)
        self.insert_row(conn, audit_events, row)

    def list_audit(self, conn: Connection, request_id: str | None, limit: int) -> list[AuditEvent]:
        """The newest ``limit`` events (of one request, if given), oldest first."""
        stmt = sa.select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
        if request_id is not None:
            stmt = stmt.where(audit_events.c.request_id == request_id)
        rows = conn.execute(stmt).all()
        return [audit_from_row(row) for row in reversed(rows)]

    def search_audit(
        self,
        conn: Connection,
        *,
        since: datetime | None = None,
        events: Sequence[str] = (),
        serial: str | None = None,
        request_id: str | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """The newest ``limit`` events matching every filter given, oldest first (a log's
        order). ``events`` matches an event name exactly or as a dotted prefix (``"request"``
        finds ``request.received`` and ``request.denied``); ``since`` is inclusive."""
        a = audit_events.c
        stmt = sa.select(audit_events).order_by(a.id.desc()).limit(limit)
        if since is not None:
            stmt = stmt.where(a.at >= since)
        if events:
            named = [
                sa.or_(a.event == e, a.event.startswith(f"{e}.", autoescape=True)) for e in events
            ]
            stmt = stmt.where(sa.or_(*named))
        if serial is not None:
            stmt = stmt.where(a.serial == serial)
        if request_id is not None:
            stmt = stmt.where(a.request_id == request_id)
        return [audit_from_row(row) for row in reversed(conn.execute(stmt).all())]

    def get_audit(self, conn: Connection, event_id: int) -> AuditEvent | None:
        """One event by id, or ``None``."""
        row = conn.execute(sa.select(audit_events).where(audit_events.c.id == event_id)).first()
        return None if row is None else audit_from_row(row)
