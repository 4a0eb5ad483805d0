"""Numeric request ids on the CES wire (MS-WSTEP §3.1.4.1.2.4 ``wstep:RequestID``).

AD CS answers with its database row id, a positive 32-bit number, and CES clients keep it to
poll with (cepces parses it as an unsigned 32-bit integer). certgate's own request ids are UUIDs,
so each CES request gets a number from ``wstep_request_numbers`` (an identity column, shared by
every gateway instance on the database), mapped one-to-one to the certgate request.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway.errors import CertgateError
from protocols.wstep.tables import MAX_REQUEST_NUMBER, wstep_request_numbers
from protocols.wstep.users import SQLRunner

_T = wstep_request_numbers


class RequestNumbers:
    """Allocates and resolves CES request numbers through the SQL store."""

    def __init__(self, store: SQLRunner) -> None:
        self._store = store

    async def number_for(self, request_id: str) -> int:
        """The number of ``request_id``, allocating one the first time (a retry of the same
        request, from this or another instance, gets the same number)."""
        number: int = await self._store.write(allocate, request_id, datetime.now(UTC))
        return number

    async def request_of(self, wire_id: str) -> str | None:
        """The certgate request id a client's ``RequestID`` names, or ``None`` when it names
        nothing (not a number in range, or no such number)."""
        number = parse_number(wire_id)
        if number is None:
            return None
        found: str | None = await self._store.read(lookup, number)
        return found


def parse_number(text: str) -> int | None:
    """``"61"`` -> 61; anything that is not a plain decimal in 1..2**31-1 -> ``None``."""
    if not (0 < len(text) <= 10 and text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 0 < value <= MAX_REQUEST_NUMBER else None


# -- store bodies (synchronous Core, run by SQLStore.read/write) --------------------------


def lookup(conn: Connection, number: int) -> str | None:
    row = conn.execute(sa.select(_T.c.request_id).where(_T.c.number == number)).first()
    return None if row is None else str(row.request_id)


def allocate(conn: Connection, request_id: str, now: datetime) -> int:
    existing = _number(conn, request_id)
    if existing is not None:
        return existing
    try:
        # A savepoint: on PostgreSQL another instance may insert the same request id between
        # the select and this insert; its row wins and this transaction goes on.
        with conn.begin_nested():
            conn.execute(sa.insert(_T).values(request_id=request_id, created_at=now))
    except IntegrityError:
        pass
    number = _number(conn, request_id)
    if number is None or number > MAX_REQUEST_NUMBER:  # pragma: no cover - identity bounds
        raise CertgateError("CES request numbers are exhausted")
    return number


def _number(conn: Connection, request_id: str) -> int | None:
    row = conn.execute(sa.select(_T.c.number).where(_T.c.request_id == request_id)).first()
    return None if row is None else int(row.number)
