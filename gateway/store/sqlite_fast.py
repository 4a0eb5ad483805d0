"""Raw ``sqlite3`` statements for the per-issuance write path on SQLite.

Why: an issuance writes about eight rows in three transactions, and SQLAlchemy Core costs
roughly 40-50 µs of Python per ``execute`` even with its compiled cache, more than the
certificate signature itself (see docs/performance.md). On SQLite these few statements go
straight to the driver's cursor, inside the same transaction the store's runner opened.

The encoding is exactly what the SQLAlchemy column types in :mod:`gateway.store.tables`
write on SQLite (fixed-width ISO 8601 text for :class:`UTCDateTime`, ``json.dumps`` for JSON),
so every read keeps using Core and cannot tell the difference; a contract test writes through
both paths and compares the rows. PostgreSQL always uses Core.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.tables import UTCDateTime

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


def _encode_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use timezone-aware UTC")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _decode_datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def _encode_json(value: Any) -> str:
    return json.dumps(value)


def _decode_json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _identity(value: Any) -> Any:
    return value


def _codecs(column: sa.Column[Any]) -> tuple[Encoder, Decoder]:
    if isinstance(column.type, UTCDateTime):
        return _encode_datetime, _decode_datetime
    if isinstance(column.type, sa.JSON):
        return _encode_json, _decode_json
    return _identity, _identity


class FastTable:
    """Pre-rendered INSERT / SELECT-by-key SQL and value codecs for one table."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self.columns = [c.name for c in table.columns]
        codecs = [_codecs(c) for c in table.columns]
        self._encoders = dict(zip(self.columns, (e for e, _ in codecs), strict=True))
        self._decoders = [d for _, d in codecs]
        names = ", ".join(self.columns)
        (pk,) = table.primary_key.columns
        self._sql_cache: dict[tuple[str, ...], str] = {}
        self._select_by_pk = f"SELECT {names} FROM {table.name} WHERE {pk.name} = ?"  # noqa: S608

    def insert_sql(self, keys: tuple[str, ...]) -> str:
        cols = ", ".join(keys)
        marks = ", ".join("?" for _ in keys)
        return f"INSERT INTO {self.table.name} ({cols}) VALUES ({marks})"  # noqa: S608

    def encode(self, values: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[Any, ...]:
        enc = self._encoders
        return tuple(enc[k](values[k]) for k in keys)

    def get(self, conn: Connection, key: Any) -> SimpleNamespace | None:
        """The row with primary key ``key`` decoded like SQLAlchemy would, attribute access."""
        cur = raw_cursor(conn)
        try:
            row = cur.execute(self._select_by_pk, (key,)).fetchone()
        finally:
            cur.close()
        if row is None:
            return None
        return SimpleNamespace(
            **{name: dec(v) for name, dec, v in zip(self.columns, self._decoders, row, strict=True)}
        )

    def insert_sql_for(self, keys: tuple[str, ...]) -> str:
        """Cached INSERT SQL for this column list."""
        sql = self._sql_cache.get(keys)
        if sql is None:
            sql = self._sql_cache[keys] = self.insert_sql(keys)
        return sql


def raw_cursor(conn: Connection) -> Any:
    """A cursor of the DBAPI connection under ``conn`` (same transaction)."""
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def execute(conn: Connection, sql: str, params: tuple[Any, ...]) -> int:
    """Run one statement on the raw cursor; returns the row count. Driver errors are raised
    as SQLAlchemy's (``IntegrityError``, ``OperationalError``), as Core would, so callers
    and the busy-retry loop treat both paths alike."""
    cur = raw_cursor(conn)
    try:
        cur.execute(sql, params)
        return int(cur.rowcount)
    except sqlite3.IntegrityError as exc:
        raise sa.exc.IntegrityError(sql, params, exc) from exc
    except sqlite3.OperationalError as exc:
        raise sa.exc.OperationalError(sql, params, exc) from exc
    finally:
        cur.close()


def insert(conn: Connection, table: FastTable, values: Mapping[str, Any]) -> None:
    """INSERT ``values`` (a dict of column -> Python value) into ``table``."""
    keys = tuple(values)
    sql = table.insert_sql_for(keys)
    try:
        params = table.encode(values, keys)
    except (ValueError, TypeError) as exc:  # as Core reports a bind-processing failure
        raise sa.exc.StatementError(str(exc), sql, None, exc) from exc
    execute(conn, sql, params)


encode_datetime = _encode_datetime
encode_json = _encode_json
