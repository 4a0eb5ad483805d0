"""The raw ``sqlite3`` toolkit of the raw-SQLite repositories (the core store's
:mod:`gateway.store.sqlite_queries`; protocol packages reach it through
:mod:`gateway.store.raw`, its public face).

Why: an issuance writes about eight rows in three transactions, and SQLAlchemy Core costs
roughly 40-50 µs of Python per ``execute`` even with its compiled cache, more than the
certificate signature itself (see docs/performance.md). On SQLite the hot statements go
straight to the driver's cursor, inside the same transaction the store's engine opened.

The encoding is exactly what the SQLAlchemy column types in :mod:`gateway.store.tables`
write on SQLite (fixed-width ISO 8601 text for :class:`UTCDateTime`, ``json.dumps`` for JSON),
so Core reads cannot tell the difference; the contract tests run every store operation on
the raw and the Core repository and compare the rows (tests/contract/test_store_paths.py).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.tables import UTCDateTime

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


def _bind_error(exc: Exception) -> sa.exc.StatementError:
    """A value the column type cannot bind, reported as Core's bind processing reports it."""
    return sa.exc.StatementError(str(exc), None, None, exc)


def _encode_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise _bind_error(ValueError("naive datetime given to the store; use timezone-aware UTC"))
    return _iso_utc(value)


@functools.lru_cache(maxsize=128)
def _iso_utc(value: datetime) -> str:
    """``value`` in UTC as ISO 8601 with microseconds. Cached: an issuance stores its
    validity (shared by all issuances within a second) and its timestamps several times."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


def decode_utc(value: str) -> datetime:
    """A stored datetime (never NULL) as an aware UTC datetime."""
    return datetime.fromisoformat(value).astimezone(UTC)


def _decode_datetime(value: str | None) -> datetime | None:
    return None if value is None else decode_utc(value)


def _encode_json(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise _bind_error(exc) from exc


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
        # Only the columns whose stored form differs (datetimes, JSON) are converted on read;
        # the rest pass through as the driver gives them (a request row has 23 columns, 6 of
        # them converted: decoding every column through a function cost most of a read).
        self._conversions = [
            (name, dec)
            for name, (_, dec) in zip(self.columns, codecs, strict=True)
            if dec is not _identity
        ]
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
        return None if row is None else self.decode(row)

    def decode(self, row: Sequence[Any]) -> SimpleNamespace:
        """A raw row of all columns, in table order, decoded like SQLAlchemy would, with
        attribute access (what :mod:`gateway.store.rows` reads)."""
        values = dict(zip(self.columns, row, strict=True))
        for name, dec in self._conversions:
            values[name] = dec(values[name])
        return SimpleNamespace(**values)

    def insert_sql_for(self, keys: tuple[str, ...]) -> str:
        """Cached INSERT SQL for this column list."""
        sql = self._sql_cache.get(keys)
        if sql is None:
            sql = self._sql_cache[keys] = self.insert_sql(keys)
        return sql


def driver_error(sql: str, params: tuple[Any, ...], exc: sqlite3.Error) -> sa.exc.DBAPIError:
    """``exc`` as the SQLAlchemy error Core would raise (``IntegrityError`` for constraint
    violations, ``OperationalError`` for the rest, busy included), so callers and the busy
    retry loop treat the raw and the Core paths alike."""
    if isinstance(exc, sqlite3.IntegrityError):
        return sa.exc.IntegrityError(sql, params, exc)
    return sa.exc.OperationalError(sql, params, exc)


def raw_cursor(conn: Connection) -> Any:
    """A cursor of the DBAPI connection under ``conn`` (same transaction)."""
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def execute(conn: Connection, sql: str, params: tuple[Any, ...]) -> int:
    """Run one statement on the raw cursor; returns the row count (driver errors as
    :func:`driver_error`)."""
    cur = raw_cursor(conn)
    try:
        cur.execute(sql, params)
        return int(cur.rowcount)
    except sqlite3.Error as exc:
        raise driver_error(sql, params, exc) from exc
    finally:
        cur.close()


def insert(conn: Connection, table: FastTable, values: Mapping[str, Any]) -> None:
    """INSERT ``values`` (a dict of column -> Python value) into ``table``."""
    keys = tuple(values)
    execute(conn, table.insert_sql_for(keys), table.encode(values, keys))


# Public names for the raw paths elsewhere (ACME's sqlite_rows). Encoders raise
# StatementError for values the column type cannot bind, as Core does.
encode_datetime = _encode_datetime
decode_datetime = _decode_datetime
encode_json = _encode_json
decode_json = _decode_json


def column_encoder(column: sa.Column[Any]) -> Encoder:
    """What ``column``'s type writes on SQLite (see the module docstring)."""
    return _codecs(column)[0]


def run_statements(conn: Connection, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Execute ``statements`` on one raw cursor (same transaction); errors as :func:`execute`."""
    cur = raw_cursor(conn)
    sql: str = ""
    params: tuple[Any, ...] = ()
    try:
        for sql, params in statements:
            cur.execute(sql, params)
    except sqlite3.Error as exc:
        raise driver_error(sql, params, exc) from exc
    finally:
        cur.close()


def fetch_all(conn: Connection, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """All rows of a raw SELECT."""
    cur = raw_cursor(conn)
    try:
        return [tuple(row) for row in cur.execute(sql, params).fetchall()]
    except sqlite3.Error as exc:
        raise driver_error(sql, params, exc) from exc
    finally:
        cur.close()


def fetch_one(conn: Connection, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The first row of a raw SELECT, or of a write with RETURNING (or ``None``)."""
    cur = raw_cursor(conn)
    try:
        row = cur.execute(sql, params).fetchone()
    except sqlite3.Error as exc:
        raise driver_error(sql, params, exc) from exc
    finally:
        cur.close()
    return None if row is None else tuple(row)
