"""Filtered, paged reads for operators (the admin API and console, issue #16) in SQLAlchemy Core.

Part of :class:`gateway.store.repository.CoreQueries`, on every database (the raw-SQLite
repository inherits them: these are not hot statements). Each search returns one page, newest
first, and whether more follow; the next page starts after a keyset position (the sort key of
the page's last row), never an OFFSET, so a page is as cheap at the end of the inventory as at
its start and rows written meanwhile never shift it. The page is chosen on the key columns
alone and only its rows are read whole: sorting the inventory with its DER (or requests with
their CSRs) attached cost SQLite 0.3 s for 20,000 certificates. Text filters match a
case-insensitive substring the same way on SQLite and PostgreSQL (``lower(column) LIKE
'%x%'``, wildcards in the filter escaped).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.model import AuditEvent, CertificateRecord, CertificateStatus, RequestRecord
from gateway.store.rows import audit_from_row, certificate_from_row, request_from_row
from gateway.store.tables import audit_events, certificates, requests

_REQ = requests.c
_CERT = certificates.c
_AUDIT = audit_events.c


def _contains(column: Any, text: str) -> sa.ColumnElement[bool]:
    """Case-insensitive substring match, identical on SQLite and PostgreSQL."""
    return sa.func.lower(column).contains(text.lower(), autoescape=True)


def _page(rows: Sequence[Any], limit: int) -> tuple[list[Any], bool]:
    return list(rows[:limit]), len(rows) > limit


class SearchQueries:
    """Operator searches; each body returns ``(page, more)``."""

    def search_requests(
        self,
        conn: Connection,
        *,
        states: Sequence[str] = (),
        protocol: str | None = None,
        template: str | None = None,
        requester: str | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> tuple[list[RequestRecord], bool]:
        """Requests newest first (``created_at``, then id), filtered by state (any of
        ``states``), protocol and template (exact) and requester (substring of the
        principal); ``after`` is the (created_at, id) of the previous page's last row."""
        order = (_REQ.created_at.desc(), _REQ.id.desc())
        stmt = sa.select(_REQ.id).order_by(*order)
        if states:
            stmt = stmt.where(_REQ.state.in_(list(states)))
        if protocol is not None:
            stmt = stmt.where(_REQ.protocol == protocol)
        if template is not None:
            stmt = stmt.where(_REQ.template == template)
        if requester is not None:
            stmt = stmt.where(_contains(_REQ.requester_principal, requester))
        if after is not None:
            at, rid = after
            stmt = stmt.where(
                sa.or_(_REQ.created_at < at, sa.and_(_REQ.created_at == at, _REQ.id < rid))
            )
        page = sa.select(requests).where(_REQ.id.in_(stmt.limit(limit + 1))).order_by(*order)
        rows, more = _page(conn.execute(page).all(), limit)
        return [request_from_row(r) for r in rows], more

    def count_requests(self, conn: Connection, state: str, pending_reason: str | None) -> int:
        """How many requests are in ``state`` (and, if given, pending for that reason)."""
        stmt = sa.select(sa.func.count()).select_from(requests).where(_REQ.state == state)
        if pending_reason is not None:
            stmt = stmt.where(_REQ.pending_reason == pending_reason)
        return int(conn.execute(stmt).scalar_one())

    def search_certificates(
        self,
        conn: Connection,
        now: datetime,
        *,
        q: str | None = None,
        subject: str | None = None,
        san: str | None = None,
        serial: str | None = None,
        template: str | None = None,
        status: str | None = None,
        expires_before: datetime | None = None,
        expires_after: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> tuple[list[CertificateRecord], bool]:
        """The inventory, most recently issued first (``not_before`` descending, then serial).

        ``q`` matches a substring of the subject, a SAN or the serial; ``subject`` and ``san``
        a substring of theirs; ``serial`` (normalised hex) and ``template`` exactly.
        ``status``: ``valid`` (not revoked, not expired at ``now``), ``expired`` (not revoked,
        expired) or ``revoked``. ``expires_before`` is exclusive, ``expires_after``
        inclusive. ``after``: (not_before, serial) of the previous page's last row."""
        sans_text = sa.cast(_CERT.sans, sa.Text)
        order = (_CERT.not_before.desc(), _CERT.serial)
        stmt = sa.select(_CERT.serial).order_by(*order)
        if q is not None:
            stmt = stmt.where(
                sa.or_(
                    _contains(_CERT.subject, q),
                    _contains(sans_text, q),
                    _contains(_CERT.serial, q),
                )
            )
        if subject is not None:
            stmt = stmt.where(_contains(_CERT.subject, subject))
        if san is not None:
            stmt = stmt.where(_contains(sans_text, san))
        if serial is not None:
            stmt = stmt.where(_CERT.serial == serial)
        if template is not None:
            stmt = stmt.where(_CERT.template == template)
        if status == "revoked":
            stmt = stmt.where(_CERT.status == CertificateStatus.REVOKED.value)
        elif status == "valid":
            stmt = stmt.where(_CERT.status == CertificateStatus.VALID.value, _CERT.not_after > now)
        elif status == "expired":
            stmt = stmt.where(_CERT.status == CertificateStatus.VALID.value, _CERT.not_after <= now)
        if expires_before is not None:
            stmt = stmt.where(_CERT.not_after < expires_before)
        if expires_after is not None:
            stmt = stmt.where(_CERT.not_after >= expires_after)
        if after is not None:
            nb, last = after
            stmt = stmt.where(
                sa.or_(_CERT.not_before < nb, sa.and_(_CERT.not_before == nb, _CERT.serial > last))
            )
        page = sa.select(certificates).where(_CERT.serial.in_(stmt.limit(limit + 1)))
        rows, more = _page(conn.execute(page.order_by(*order)).all(), limit)
        return [certificate_from_row(r) for r in rows], more

    def expiry_dates(self, conn: Connection, start: datetime, end: datetime) -> list[datetime]:
        """``not_after`` of every valid (unrevoked) certificate expiring in [start, end) that
        no renewal has replaced yet, soonest first: the renewal chart counts them per week."""
        stmt = (
            sa.select(_CERT.not_after)
            .where(
                _CERT.status == CertificateStatus.VALID.value,
                _CERT.superseded_by.is_(None),
                _CERT.not_after >= start,
                _CERT.not_after < end,
            )
            .order_by(_CERT.not_after)
        )
        return list(conn.execute(stmt).scalars())

    def search_audit_page(
        self,
        conn: Connection,
        *,
        events: Sequence[str] = (),
        actor: str | None = None,
        request_id: str | None = None,
        serial: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> tuple[list[AuditEvent], bool]:
        """Audit events newest first. ``events``: a name exactly or a dotted prefix;
        ``actor``, ``request_id`` and ``serial`` exactly; ``since`` inclusive, ``until``
        exclusive; ``before_id``: the previous page's last id."""
        stmt = sa.select(audit_events).order_by(_AUDIT.id.desc())
        if events:
            named = [
                sa.or_(_AUDIT.event == e, _AUDIT.event.startswith(f"{e}.", autoescape=True))
                for e in events
            ]
            stmt = stmt.where(sa.or_(*named))
        if actor is not None:
            stmt = stmt.where(_AUDIT.actor == actor)
        if request_id is not None:
            stmt = stmt.where(_AUDIT.request_id == request_id)
        if serial is not None:
            stmt = stmt.where(_AUDIT.serial == serial)
        if since is not None:
            stmt = stmt.where(_AUDIT.at >= since)
        if until is not None:
            stmt = stmt.where(_AUDIT.at < until)
        if before_id is not None:
            stmt = stmt.where(_AUDIT.id < before_id)
        rows, more = _page(conn.execute(stmt.limit(limit + 1)).all(), limit)
        return [audit_from_row(r) for r in rows], more
