"""The SQLite engine's read seam (``run_autocommit``) equals ``with conn.begin(): body()``:
same result or error, same rows, and no transaction left open, for raw and Core bodies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store import raw
from gateway.store.sqlite_engine import SQLiteDatabase, run_autocommit

_T = sa.table("t", sa.column("k"), sa.column("v"))


def _raw_read(conn: Connection) -> Any:
    return raw.fetch_all(conn, "SELECT k, v FROM t ORDER BY k", ())


def _raw_write(conn: Connection) -> Any:
    return raw.execute(conn, "INSERT INTO t (k, v) VALUES (?, ?)", (9, "raw"))


def _raw_duplicate(conn: Connection) -> Any:
    return raw.execute(conn, "INSERT INTO t (k, v) VALUES (?, ?)", (1, "dup"))


def _raw_bad_sql(conn: Connection) -> Any:
    return raw.fetch_all(conn, "SELECT nope FROM t", ())


def _raw_begun(conn: Connection) -> Any:
    raw.run_statements(conn, [("BEGIN", ()), ("INSERT INTO t (k, v) VALUES (7, 'b')", ())])
    return 7


def _raw_begun_failing(conn: Connection) -> Any:
    _raw_begun(conn)
    raise RuntimeError("after BEGIN")


def _core_read(conn: Connection) -> Any:
    return [tuple(r) for r in conn.execute(sa.select(_T.c.k, _T.c.v).order_by(_T.c.k))]


def _core_write(conn: Connection) -> Any:
    return conn.execute(sa.insert(_T).values(k=8, v="core")).rowcount


def _core_duplicate(conn: Connection) -> Any:
    return conn.execute(sa.insert(_T).values(k=1, v="dup")).rowcount


def _core_then_raise(conn: Connection) -> Any:
    conn.execute(sa.insert(_T).values(k=6, v="x"))
    raise ValueError("body failed")


BODIES: list[Callable[[Connection], Any]] = [
    _raw_read,
    _raw_write,
    _raw_duplicate,
    _raw_bad_sql,
    _raw_begun,
    _raw_begun_failing,
    _core_read,
    _core_write,
    _core_duplicate,
    _core_then_raise,
]


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[Connection]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}", poolclass=sa.pool.StaticPool)
    sa.event.listen(engine, "connect", SQLiteDatabase._on_connect)
    with engine.connect() as conn:
        with conn.begin():
            conn.exec_driver_sql("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1, 'one')")
        yield conn
    engine.dispose()


def _plain(conn: Connection, body: Callable[[Connection], Any]) -> Any:
    with conn.begin():
        return body(conn)


def _outcome(conn: Connection, run: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        result: Any = ("ok", run())
    except Exception as exc:
        result = ("error", type(exc), str(exc))
    state = (conn.in_transaction(), conn.connection.dbapi_connection.in_transaction)  # type: ignore[union-attr]
    with conn.begin():
        rows = _raw_read(conn)
        conn.exec_driver_sql("DELETE FROM t WHERE k <> 1")
    return result, state, rows


@pytest.mark.parametrize("body", BODIES, ids=lambda b: b.__name__)
def test_run_autocommit_equals_the_begin_block(
    connection: Connection, body: Callable[[Connection], Any]
) -> None:
    plain = _outcome(connection, lambda: _plain(connection, body))
    fast = _outcome(connection, lambda: run_autocommit(connection, body, (), {}))
    assert fast == plain
    assert plain[1] == (False, False)
