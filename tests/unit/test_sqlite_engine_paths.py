"""The SQLite engine's seams equal the ``with conn.begin()`` blocks they replace: reads
(``run_autocommit``) ``with conn.begin(): body()``, writes (``run_immediate``) the same after
``BEGIN IMMEDIATE``: same result or error, same rows, no transaction left open, for raw and
Core bodies, failing ones, a failing COMMIT, and a write lock held by another connection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store import raw
from gateway.store.engine import Mode
from gateway.store.sqlite_engine import SQLiteDatabase, run_autocommit, run_immediate
from gateway.store.sqlite_files import is_busy

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


def _raw_orphan(conn: Connection) -> Any:
    """Violates the deferred foreign key: COMMIT fails (in a write transaction)."""
    return raw.execute(conn, "INSERT INTO c (p) VALUES (?)", (404,))


def _raw_write_then_raise(conn: Connection) -> Any:
    _raw_write(conn)
    raise RuntimeError("body failed")


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
    _raw_write_then_raise,
]


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[Connection]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}", poolclass=sa.pool.StaticPool)
    sa.event.listen(engine, "connect", SQLiteDatabase._on_connect)
    with engine.connect() as conn:
        with conn.begin():
            conn.exec_driver_sql("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1, 'one')")
            conn.exec_driver_sql(
                "CREATE TABLE c (p INTEGER REFERENCES t (k) DEFERRABLE INITIALLY DEFERRED)"
            )
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
    driver = conn.connection.dbapi_connection
    state = (conn.in_transaction(), driver.in_transaction)  # type: ignore[union-attr]
    if state[1]:
        driver.rollback()  # type: ignore[union-attr]
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


def _plain_write(conn: Connection, body: Callable[[Connection], Any]) -> Any:
    with conn.begin():
        raw.execute(conn, "BEGIN IMMEDIATE", ())
        return body(conn)


@pytest.mark.parametrize("body", [*BODIES[:4], *BODIES[6:]], ids=lambda b: b.__name__)
def test_run_immediate_equals_the_begin_block(
    connection: Connection, body: Callable[[Connection], Any]
) -> None:
    plain = _outcome(connection, lambda: _plain_write(connection, body))
    fast = _outcome(connection, lambda: run_immediate(connection, body, (), {}))
    assert fast == plain
    assert plain[1] == (False, False)


def _core_orphan(conn: Connection) -> Any:
    return conn.exec_driver_sql("INSERT INTO c (p) VALUES (404)").rowcount


@pytest.mark.parametrize("body", [_raw_orphan, _core_orphan], ids=lambda b: b.__name__)
def test_a_refused_commit_raises_as_the_block_and_leaves_no_transaction(
    connection: Connection, body: Callable[[Connection], Any]
) -> None:
    plain = _outcome(connection, lambda: _plain_write(connection, body))
    fast = _outcome(connection, lambda: run_immediate(connection, body, (), {}))
    assert fast[0] == plain[0]
    assert fast[0][1] is sa.exc.IntegrityError
    assert fast[2] == plain[2]
    # the block left SQLite's transaction open (every later BEGIN failed); the seam does not
    assert plain[1] == (False, True)
    assert fast[1] == (False, False)


def test_run_immediate_on_a_locked_database_is_busy_like_the_block(
    connection: Connection, tmp_path: Path
) -> None:
    other = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}", poolclass=sa.pool.StaticPool)
    sa.event.listen(other, "connect", SQLiteDatabase._on_connect)
    with other.connect() as holder:
        raw.execute(holder, "BEGIN IMMEDIATE", ())
        plain = _error(lambda: _plain_write(connection, _raw_write))
        fast = _error(lambda: run_immediate(connection, _raw_write, (), {}))
        state = (connection.in_transaction(), _driver_in_transaction(connection))
        raw.execute(holder, "ROLLBACK", ())
    other.dispose()
    assert type(fast) is type(plain) is sa.exc.OperationalError
    assert str(fast) == str(plain)
    assert is_busy(fast)
    assert state == (False, False)


def _error(run: Callable[[], Any]) -> sa.exc.OperationalError:
    with pytest.raises(sa.exc.OperationalError) as caught:
        run()
    return caught.value


def _driver_in_transaction(conn: Connection) -> bool:
    return bool(conn.connection.dbapi_connection.in_transaction)  # type: ignore[union-attr]


async def test_the_engine_refuses_a_failing_body_alone(tmp_path: Path) -> None:
    """Through ``SQLiteDatabase``: a failing lone body leaves the database unchanged and raises
    its own error; in a batch of three the failing one alone is undone."""
    db = SQLiteDatabase(sa.make_url(f"sqlite:///{tmp_path / 'e.db'}"))
    try:
        await db.run(Mode.WRITE, _create)
        with pytest.raises(RuntimeError, match="body failed"):
            await db.run(Mode.WRITE, _raw_write_then_raise)
        with pytest.raises(sa.exc.IntegrityError):
            await db.run(Mode.WRITE, _raw_duplicate)
        assert await db.run(Mode.AUTOCOMMIT, _raw_read) == [(1, "one")]
        results = await asyncio.gather(
            db.run(Mode.WRITE, _core_write),
            db.run(Mode.WRITE, _raw_write_then_raise),
            db.run(Mode.WRITE, _raw_write),
            return_exceptions=True,
        )
        assert results[0] == 1 and results[2] == 1
        assert isinstance(results[1], RuntimeError)
        assert await db.run(Mode.AUTOCOMMIT, _raw_read) == [(1, "one"), (8, "core"), (9, "raw")]
    finally:
        await db.close()


def _create(conn: Connection) -> None:
    raw.run_statements(
        conn,
        [
            ("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)", ()),
            ("INSERT INTO t VALUES (1, 'one')", ()),
        ],
    )
