"""SQLite: one persistent ``sqlite3`` connection per process, driven inline on the event loop.

Why not aiosqlite: it hops to its worker thread for every cursor/execute/fetch/close (about ten
hops per transaction). Same bodies, same file, reference machine: create_request 1.27 ms ->
0.15 ms, journal put 1.03 ms -> 0.05 ms, record_issued 1.55 ms -> 0.22 ms. Inline is safe
because an SQLite transaction here never waits for long: WAL with ``synchronous=NORMAL`` does
not fsync on commit (only the automatic checkpoint every ~1000 pages does, a few ms), readers
never wait for writers, and a writer that finds the write lock taken gets ``SQLITE_BUSY`` at
once (``busy_timeout`` is 0 on the connection) and waits with ``asyncio.sleep`` before
retrying the whole body, up to ``busy_timeout`` seconds in all. Write transactions start with
``BEGIN IMMEDIATE`` (taking the write lock up front), so two processes can never deadlock
upgrading a read lock to a write lock.

Checkpoints (copying WAL frames back into the database file, then an fsync) are the one place
SQLite waits for the disk. They run in a background thread on a connection of its own
(:class:`~gateway.store.sqlite_files.Checkpointer`, ``PRAGMA wal_checkpoint(PASSIVE)`` twice a
second while there are writes), never in a commit on the event loop; the loop's connection
keeps a large ``wal_autocheckpoint`` only as a backstop should that thread fall behind.

Transactions end on the driver (:func:`run_autocommit`, :func:`run_immediate`), with
SQLAlchemy's transaction object only for a Core body that autobegan one: about 24K of 57K
instructions per raw read, 23K of 151K per write (callgrind; ACME flow on SQLite with the file
check and checkpointer poke made cheaper too: 17.5 -> 16.9-17.0 M instructions).

A database file deleted or replaced under a running gateway is detected
(:class:`~gateway.store.sqlite_files.FileWatch`): from then on every call raises, and the
file is never silently created again.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection

from gateway.store import sqlite_fast as fast
from gateway.store.engine import Body, Mode, P, T
from gateway.store.outage import DatabaseUnavailable, Health
from gateway.store.sqlite_files import (
    Checkpointer,
    FileWatch,
    is_busy,
    sqlite_unavailable,
)


@dataclass
class _Queued:
    """A write body waiting for the next group commit."""

    body: Callable[..., Any]
    args: tuple[Any, ...]
    kw: dict[str, Any]
    future: asyncio.Future[Any]
    started: float


#: Longest back-off between two attempts at a busy database. Another process holds the write
#: lock for one (group) commit, about a millisecond: waiting much longer only idles this one.
_MAX_BUSY_DELAY = 0.004

#: Backstop auto-checkpoint of the serving connection, in pages (SQLite's default is 1000).
_BACKSTOP_AUTOCHECKPOINT = 20000


def run_autocommit(
    conn: Connection, body: Callable[..., T], args: tuple[Any, ...], kw: dict[str, Any]
) -> T:
    """``with conn.begin(): body(conn, ...)`` without SQLAlchemy's transaction object when the
    body did not need one. A read's BEGIN is a no-op here (the driver's own BEGIN is off, see
    ``_on_connect``): it only keeps Core from leaving an autobegun transaction open. A raw
    body never opens one, and the object, its commit and its context cost ~5 us per read; a
    Core body autobegins one, which is committed (or rolled back) here as the block would."""
    try:
        result = body(conn, *args, **kw)
    except BaseException:
        _end(conn, commit=False)
        raise
    _end(conn, commit=True)
    return result


def run_immediate(
    conn: Connection, body: Callable[..., T], args: tuple[Any, ...], kw: dict[str, Any]
) -> T:
    """``with conn.begin(): BEGIN IMMEDIATE; body(conn, *args)``: :func:`run_autocommit`
    after the BEGIN (a failed commit is raised as Core raises it, after a rollback as the
    block does)."""
    # on the raw cursor (errors wrapped as Core's): ~5 us less than exec_driver_sql
    fast.execute(conn, "BEGIN IMMEDIATE", ())
    return run_autocommit(conn, body, args, kw)


def _end(conn: Connection, *, commit: bool) -> None:
    """Commit or roll back the open transaction: Core's if it has one, else the driver's."""
    driver = _driver(conn)
    try:
        if conn.in_transaction():
            conn.commit() if commit else conn.rollback()
        elif driver.in_transaction:
            try:
                driver.commit() if commit else driver.rollback()
            except sqlite3.Error as exc:
                raise sa.exc.DBAPIError.instance(None, None, exc, sqlite3.Error) from exc
    finally:
        # A COMMIT refused (deferred constraint, I/O) leaves SQLite's transaction open, and
        # Core's block did not roll it back: every later BEGIN on the connection then failed.
        if conn.get_transaction() is not None:  # a failed commit leaves it inactive
            conn.rollback()
        if driver.in_transaction:
            driver.rollback()


def _driver(conn: Connection) -> sqlite3.Connection:
    return conn.connection.dbapi_connection  # type: ignore[return-value]


class SQLiteDatabase:
    """One persistent connection driven inline on the event loop (see the module docstring).

    One connection is enough: bodies are synchronous, so two of them can never interleave in
    one process; other processes are kept apart by SQLite's file locks.
    """

    dialect_name = "sqlite"

    def __init__(self, url: sa.URL, *, busy_timeout: float = 10.0, create: bool = True) -> None:
        self._busy_timeout = busy_timeout
        path: Path | None = None
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            path = Path(url.database).absolute()
        self._health = Health(str(path) if path else "sqlite")
        self._files = FileWatch(path, create=create, health=self._health)
        self._engine = sa.create_engine(
            url.set(drivername="sqlite+pysqlite"),
            connect_args={"check_same_thread": False},
            poolclass=sa.pool.StaticPool,
        )
        event.listen(self._engine, "connect", self._on_connect)
        self._conn: Connection | None = None
        self._queue: list[_Queued] = []
        self._flush_scheduled = False
        database = url.database or ""
        self._file = database if database and database != ":memory:" else None
        self._checkpointer: Checkpointer | None = None

    @staticmethod
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The documented pysqlite transaction fix: stop the driver from emitting its own
        # (DEFERRED) BEGIN, so the store can say BEGIN IMMEDIATE for writes.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            # SQLite must never sleep on the event loop: lock waits happen in run().
            cur.execute("PRAGMA busy_timeout = 0")
            cur.execute("PRAGMA synchronous = NORMAL")  # WAL: no fsync per commit, still safe
            cur.execute("PRAGMA foreign_keys = ON")
            # A group commit's savepoint copies every page it touches to a sub-journal, which
            # spills to a temporary file past 64 KiB: keep it in memory (~+10 % issuances/s).
            cur.execute("PRAGMA temp_store = MEMORY")
        finally:
            cur.close()

    def check_file(self, *, full: bool = True) -> None:
        """Raise :class:`DatabaseUnavailable` if the database file (``full``: or its -wal or
        -shm) was deleted or replaced since it was opened (see :class:`FileWatch`)."""
        self._files.check(full=full)

    def check(self) -> None:
        self._files.check()

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            if self._files.vanished is not None:
                raise DatabaseUnavailable(self._files.vanished)
            self._files.prepare()
            conn = self._engine.connect()
            try:
                # WAL is a property of the file; switching takes an exclusive lock for which
                # SQLite does not call the busy handler, so two processes opening a new file
                # can get SQLITE_BUSY here: it is retried like any other busy error (run()).
                (mode,) = conn.exec_driver_sql("PRAGMA journal_mode").one()
                if str(mode).lower() not in ("wal", "memory"):
                    (mode,) = conn.exec_driver_sql("PRAGMA journal_mode = WAL").one()
                if str(mode).lower() == "wal" and self._file and not self._file.startswith("file:"):
                    conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {_BACKSTOP_AUTOCHECKPOINT}")
                    if self._checkpointer is None:
                        self._checkpointer = Checkpointer(self._file)
                conn.commit()
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            if self._files.path is not None:
                if self._files.opened:
                    self._files.check()  # a reconnect must find the file it had open
                self._files.record()
        return self._conn

    async def run(self, mode: Mode, body: Body[P, T], *args: P.args, **kw: P.kwargs) -> T:
        if mode is Mode.WRITE:
            return await self._group_commit(body, *args, **kw)
        deadline: float | None = None
        delay = 0.0005
        while True:
            try:
                if self._files.due():
                    self._files.check()
                result = run_autocommit(self._connection(), body, args, kw)
                if self._checkpointer is not None:
                    self._checkpointer.poke()
                if self._health.up is not True:
                    self._health.ok()
                return result
            except (sa.exc.OperationalError, sqlite3.Error) as exc:
                if sqlite_unavailable(exc):
                    raise self._health.failed(exc) from None
                if not isinstance(exc, sa.exc.OperationalError) or not is_busy(exc):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._busy_timeout
                elif now >= deadline:
                    raise self._busy_failure() from None
            # Jittered exponential back-off so competing processes do not retry in lockstep.
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, _MAX_BUSY_DELAY)

    # -- group commit -------------------------------------------------------------------------
    #
    # Write bodies queued during one event-loop iteration run in ONE ``BEGIN IMMEDIATE ...
    # COMMIT``; a batch of several runs under savepoints (``_run_batch``), so one body's
    # failure rolls back only its own statements; a lone body needs none (its failure rolls
    # back the transaction, which held only it). On SQLite the commit (WAL frames for every
    # touched page) costs more than the statements, so concurrent enrollments share it; a
    # lone writer pays the same as before.
    # Each caller's future resolves only after the commit: nothing is reported durable early.

    async def _group_commit(self, body: Body[P, T], *args: P.args, **kw: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Queued(body, args, kw, future, time.monotonic()))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future  # type: ignore[no-any-return]

    def _flush(self, delay: float = 0.0005) -> None:
        batch, self._queue = self._queue, []
        self._flush_scheduled = False
        batch = [item for item in batch if not item.future.done()]  # cancelled callers
        if not batch:
            return
        results: list[tuple[bool, Any]] = []
        try:
            # One stat of the database file per batch (all three files once a second): a
            # write never goes into a file that was deleted since the last batch.
            self._files.check(full=self._files.due())
            conn = self._connection()
            if len(batch) == 1:
                item = batch[0]
                value = run_immediate(conn, item.body, item.args, item.kw)
                results.append((True, value))
            else:
                results = run_immediate(conn, self._run_batch, (batch,), {})
        except DatabaseUnavailable as exc:
            self._settle_all(batch, exc)
            return
        except (sa.exc.OperationalError, sqlite3.Error) as exc:
            if sqlite_unavailable(exc):
                self._settle_all(batch, self._health.failed(exc))
                return
            if not isinstance(exc, sa.exc.OperationalError) or not is_busy(exc):
                self._settle_all(batch, exc)
                return
            now = time.monotonic()
            expired = [i for i in batch if now - i.started >= self._busy_timeout]
            for item in expired:
                if not item.future.done():
                    item.future.set_exception(self._busy_failure())
            retry = [i for i in batch if i not in expired]
            if retry:
                # Put the batch back in front and try again after a jittered back-off.
                self._queue = retry + self._queue
                if not self._flush_scheduled:
                    self._flush_scheduled = True
                    asyncio.get_running_loop().call_later(
                        delay * random.uniform(0.5, 1.5),
                        self._flush,
                        min(delay * 2, _MAX_BUSY_DELAY),
                    )
            return
        except BaseException as exc:
            self._settle_all(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        if self._checkpointer is not None:
            self._checkpointer.poke()
        if self._health.up is not True:
            self._health.ok()
        for item, (ok, value) in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if ok:
                item.future.set_result(value)
            else:
                if sqlite_unavailable(value):
                    value = self._health.failed(value)
                item.future.set_exception(value)

    def _busy_failure(self) -> DatabaseUnavailable:
        """Another process held the write lock past ``busy_timeout``: retryable, logged like
        an outage."""
        return self._health.failed(
            sqlite3.OperationalError(f"database locked for more than {self._busy_timeout:g} s")
        )

    @staticmethod
    def _run_batch(conn: Connection, batch: list[_Queued]) -> list[tuple[bool, Any]]:
        """Run several bodies in the open transaction. Optimistically all under one savepoint;
        if one fails, roll that back and run them again one savepoint each, so the failing
        body alone is undone. Bodies may run twice: they are written to (see ``Body``)."""
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.execute("SAVEPOINT certgate_batch")
            try:
                values = [item.body(conn, *item.args, **item.kw) for item in batch]
            except sa.exc.OperationalError as exc:
                if is_busy(exc):
                    raise  # the whole batch retries
                cur.execute("ROLLBACK TO certgate_batch")
            except Exception:
                cur.execute("ROLLBACK TO certgate_batch")
            else:
                cur.execute("RELEASE certgate_batch")
                return [(True, value) for value in values]
            cur.execute("RELEASE certgate_batch")
            results: list[tuple[bool, Any]] = []
            for item in batch:
                cur.execute("SAVEPOINT certgate_item")
                try:
                    value = item.body(conn, *item.args, **item.kw)
                except sa.exc.OperationalError as exc:
                    if is_busy(exc):
                        raise
                    cur.execute("ROLLBACK TO certgate_item")
                    cur.execute("RELEASE certgate_item")
                    results.append((False, exc))
                except Exception as exc:
                    cur.execute("ROLLBACK TO certgate_item")
                    cur.execute("RELEASE certgate_item")
                    results.append((False, exc))
                else:
                    cur.execute("RELEASE certgate_item")
                    results.append((True, value))
            return results
        finally:
            cur.close()

    @staticmethod
    def _settle_all(batch: list[_Queued], exc: BaseException) -> None:
        for item in batch:
            if not item.future.done():
                item.future.set_exception(exc)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._engine.dispose()
        if self._checkpointer is not None:
            checkpointer, self._checkpointer = self._checkpointer, None
            await asyncio.to_thread(checkpointer.close)
        self._files.closed()
