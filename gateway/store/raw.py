"""The public seam for raw SQLite statements run by packages outside the store.

A protocol package that keeps a raw-SQLite implementation of its repository (ACME's
:class:`protocols.acme.repository_sqlite.SQLiteAcmeRepository`) runs its statements through
these functions, inside the transaction the store opened (``store.read`` / ``store.write``
hand the body that ``Connection``), and never imports ``sqlite3`` or the store's internals.

Contract: values are encoded exactly as the SQLAlchemy column types of
:mod:`gateway.store.tables` write them on SQLite (``UTCDateTime``: ISO 8601 text with
microseconds; ``JSON``: ``json.dumps``), so Core and raw reads see the same rows; driver
errors surface as SQLAlchemy's exceptions (``IntegrityError`` for constraint violations,
``OperationalError`` for the rest, busy included), so the store's busy retry and savepoints
treat both paths alike; encoders raise ``StatementError`` for values a column type cannot bind.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from gateway.store.sqlite_fast import (
    Encoder,
    column_encoder,
    decode_datetime,
    decode_json,
    driver_error,
    encode_datetime,
    encode_json,
    execute,
    fetch_all,
    fetch_one,
    raw_cursor,
    run_statements,
)

__all__ = [
    "Encoder",
    "column_encoder",
    "decode_datetime",
    "decode_json",
    "encode_datetime",
    "encode_json",
    "execute",
    "fetch_all",
    "fetch_each",
    "fetch_one",
    "returning_supported",
    "run_statements",
]


def returning_supported() -> bool:
    """Whether the SQLite library has ``INSERT/UPDATE/DELETE ... RETURNING`` (3.35)."""
    return sqlite3.sqlite_version_info >= (3, 35, 0)


def fetch_each(
    conn: Connection, sql: str, params: Sequence[tuple[Any, ...]]
) -> list[tuple[Any, ...] | None]:
    """The first row (or ``None``) of ``sql`` run once per parameter tuple, on one cursor."""
    cur = raw_cursor(conn)
    found: list[tuple[Any, ...] | None] = []
    current: tuple[Any, ...] = ()
    try:
        for current in params:
            row = cur.execute(sql, current).fetchone()
            found.append(None if row is None else tuple(row))
    except sqlite3.Error as exc:
        raise driver_error(sql, current, exc) from exc
    finally:
        cur.close()
    return found
