"""Database engines: how one transaction body runs on SQLite and on PostgreSQL.

Every store operation is a plain synchronous SQLAlchemy Core function ``body(conn, *args)``
run in exactly one transaction by a :class:`Database`:

* PostgreSQL (``postgresql+asyncpg://``): an :class:`~sqlalchemy.ext.asyncio.AsyncEngine`;
  the body runs through :meth:`AsyncConnection.run_sync` in one transaction
  (:mod:`gateway.store.postgres`).
* SQLite (``sqlite+aiosqlite://`` or ``sqlite://``): the body runs *inline on the event loop*
  on one persistent ``sqlite3`` connection per process. Why not aiosqlite: it hops to its
  worker thread for every cursor/execute/fetch/close (about ten hops per transaction). Same
  bodies, same file, reference machine: create_request 1.27 ms -> 0.15 ms, journal put
  1.03 ms -> 0.05 ms, record_issued 1.55 ms -> 0.22 ms. Inline is safe because an SQLite
  transaction here never waits for long: WAL with ``synchronous=NORMAL`` does not fsync on
  commit (only the automatic checkpoint every ~1000 pages does, a few ms), readers never
  wait for writers, and a writer that finds the write lock taken gets
  ``SQLITE_BUSY`` at once (``busy_timeout`` is 0 on the connection) and waits with
  ``asyncio.sleep`` before retrying the whole body, up to ``busy_timeout`` seconds in all.
  Write transactions start with ``BEGIN IMMEDIATE`` (taking the write lock up front), so two
  processes can never deadlock upgrading a read lock to a write lock.

  Checkpoints (copying WAL frames back into the database file, then an fsync) are the one
  place SQLite waits for the disk. They run in a background thread on a connection of its own
  (:class:`_Checkpointer`, ``PRAGMA wal_checkpoint(PASSIVE)`` twice a second while there are
  writes), never in a commit on the event loop; the loop's connection keeps a large
  ``wal_autocheckpoint`` only as a backstop should that thread fall behind.

Outages (issue #12): a failure to reach the database (connection refused or dropped, SQLite
I/O errors, a lock held past ``busy_timeout``) is raised as :class:`DatabaseUnavailable`, a
:class:`~gateway.errors.StoreUnavailable` that every protocol renders as its retryable answer;
the cause is logged once per outage at ERROR (driver message only, never SQL parameters, which
may hold secrets) and recovery once at WARNING. An SQLite file deleted or replaced under a
running gateway is detected (:meth:`SQLiteDatabase.check_file`): from then on every call
raises, and the file is never silently created again.
"""

from __future__ import annotations

import asyncio
import enum
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, NoReturn, ParamSpec, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection

from gateway.store.outage import (
    DatabaseUnavailable,
    Health,
    companions,
    log,
    private_directory,
    private_files,
)

P = ParamSpec("P")
T = TypeVar("T")

#: A transaction body: synchronous Core statements on ``conn``; it must not keep state between
#: attempts because SQLite may run it again after ``SQLITE_BUSY``.
Body = Callable[Concatenate[Connection, P], T]

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
#: Primary SQLite result codes that mean "the database file cannot be used", not a bad
#: statement: the store is unavailable (https://sqlite.org/rescode.html).
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)
#: Seconds between two checks that the SQLite files are still the ones opened (reads; every
#: write batch checks the database file itself).
FILE_CHECK_INTERVAL = 1.0


class Mode(enum.Enum):
    """How a body runs."""

    #: One atomic transaction; on SQLite ``BEGIN IMMEDIATE`` (writers serialize up front).
    WRITE = "write"
    #: No explicit transaction: each statement commits (or reads the latest commit) on its
    #: own. For single-statement bodies this saves the BEGIN/COMMIT round trips.
    AUTOCOMMIT = "autocommit"


class Database(Protocol):
    """Runs transaction bodies; one implementation per backend family."""

    dialect_name: str

    async def run(self, mode: Mode, body: Body[P, T], *args: P.args, **kw: P.kwargs) -> T: ...

    def check(self) -> None:
        """Raise :class:`DatabaseUnavailable` if the database is known to be unusable without
        asking it (SQLite: the file was deleted or replaced); readiness calls this."""
        ...

    async def close(self) -> None: ...


def open_database(
    url: str | sa.URL,
    *,
    busy_timeout: float = 10.0,
    pool_size: int = 10,
    max_overflow: int = 10,
    create: bool = True,
) -> Database:
    """Pick the engine for ``url``. Unknown backends are refused rather than half-supported.
    ``create=False``: an SQLite file that does not exist is not created."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return SQLiteDatabase(parsed, busy_timeout=busy_timeout, create=create)
    if backend == "postgresql":
        from gateway.store.postgres import AsyncDatabase  # imports this module's Body/Mode

        return AsyncDatabase(parsed, pool_size=pool_size, max_overflow=max_overflow)
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


# --- SQLite --------------------------------------------------------------------------------


def is_busy(exc: sa.exc.DBAPIError) -> bool:
    """True for SQLite's "database is locked/busy" (retry later), not for real errors."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in _BUSY_CODES
    return "database is locked" in str(exc.orig)


def sqlite_unavailable(exc: BaseException) -> bool:
    """True for SQLite errors that mean the file cannot be used (I/O, full disk, cannot open,
    corrupt, read-only), as opposed to a statement's own error."""
    inner = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    code = getattr(inner, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _UNAVAILABLE_CODES


@dataclass
class _Queued:
    """A write body waiting for the next group commit."""

    body: Callable[..., Any]
    args: tuple[Any, ...]
    kw: dict[str, Any]
    future: asyncio.Future[Any]
    started: float


class _Checkpointer:
    """Passive WAL checkpoints off the event loop (see the module docstring).

    ``poke()`` (called after each commit) is a flag set; the thread wakes every ``interval``
    seconds and checkpoints only if something was written since. A passive checkpoint never
    takes the write lock, so it never makes a writer wait; frames still needed by a reader
    are left for the next round.
    """

    def __init__(self, path: str, interval: float = 0.5) -> None:
        self._path = path
        self._interval = interval
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="certgate-wal-checkpoint")
        self._thread.daemon = True
        self._thread.start()

    def poke(self) -> None:
        self._dirty.set()

    def _run(self) -> None:
        try:
            # mode=rw: never create the file (it may have been deleted under us).
            conn = sqlite3.connect(
                Path(self._path).absolute().as_uri() + "?mode=rw",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error:
            return
        try:
            conn.execute("PRAGMA busy_timeout = 1000")
            while not self._stop.wait(self._interval):
                if self._dirty.is_set():
                    self._dirty.clear()
                    self._checkpoint(conn)
            self._checkpoint(conn)
        finally:
            conn.close()

    @staticmethod
    def _checkpoint(conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            pass  # busy or closing: the next round (or the backstop) catches up

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


#: Longest back-off between two attempts at a busy database. Another process holds the write
#: lock for one (group) commit, about a millisecond: waiting much longer only idles this one.
_MAX_BUSY_DELAY = 0.004

#: Backstop auto-checkpoint of the serving connection, in pages (SQLite's default is 1000).
_BACKSTOP_AUTOCHECKPOINT = 20000


class SQLiteDatabase:
    """One persistent connection driven inline on the event loop (see the module docstring).

    One connection is enough: bodies are synchronous, so two of them can never interleave in
    one process; other processes are kept apart by SQLite's file locks.
    """

    dialect_name = "sqlite"

    def __init__(self, url: sa.URL, *, busy_timeout: float = 10.0, create: bool = True) -> None:
        self._busy_timeout = busy_timeout
        self._path: Path | None = None
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            self._path = Path(url.database).absolute()
        self._create = create
        #: (st_dev, st_ino) of the database, -wal and -shm files as opened.
        self._opened: dict[Path, tuple[int, int]] = {}
        self._vanished: str | None = None
        self._next_check = 0.0
        self._health = Health(str(self._path) if self._path else "sqlite")
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
        self._checkpointer: _Checkpointer | None = None

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

    def _prepare_file(self) -> None:
        """Before each (re)connect: never create a database that existed (deleted under us)
        or that the caller forbade creating; create a new one 0600 in a 0700 directory."""
        path = self._path
        if path is None:
            return
        if self._opened or not self._create:
            if not path.exists():
                raise DatabaseUnavailable(f"{path} does not exist")
        else:
            private_directory(path.parent)
        private_files(path)

    def _record_files(self) -> None:
        assert self._path is not None
        for path in (self._path, *companions(self._path)):
            if path not in self._opened:
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                self._opened[path] = (st.st_dev, st.st_ino)

    def check_file(self, *, full: bool = True) -> None:
        """Raise :class:`DatabaseUnavailable` if the database file (``full``: or its -wal or
        -shm) was deleted or replaced since it was opened: the open connection would go on
        writing into a file nobody else can see, and a new process would start an empty one.
        One ``stat`` per file; the vanished state is permanent for this process."""
        if self._vanished is not None:
            raise DatabaseUnavailable(self._vanished)
        if not self._opened:
            return
        if full:
            self._next_check = time.monotonic() + FILE_CHECK_INTERVAL
        for path, opened in self._opened.items():
            if not full and path != self._path:
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                self._file_vanished(f"{path} was deleted while the gateway had it open")
            if (st.st_dev, st.st_ino) != opened:
                self._file_vanished(f"{path} was replaced while the gateway had it open")
        if full and len(self._opened) < 3:
            self._record_files()  # -wal/-shm appear with the first WAL transaction

    def check(self) -> None:
        self.check_file()

    def _file_vanished(self, reason: str) -> NoReturn:
        self._vanished = reason
        log.error(
            "database file gone: %s; refusing every store operation until restarted "
            "(restore the database from a backup; it is not created again)",
            reason,
        )
        self._health.up = False
        raise DatabaseUnavailable(reason)

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            if self._vanished is not None:
                raise DatabaseUnavailable(self._vanished)
            self._prepare_file()
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
                        self._checkpointer = _Checkpointer(self._file)
                conn.commit()
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            if self._path is not None:
                if self._opened:
                    self.check_file()  # a reconnect must find the file it had open
                self._record_files()
        return self._conn

    async def run(self, mode: Mode, body: Body[P, T], *args: P.args, **kw: P.kwargs) -> T:
        if mode is Mode.WRITE:
            return await self._group_commit(body, *args, **kw)
        deadline: float | None = None
        delay = 0.0005
        while True:
            try:
                if self._vanished is not None or time.monotonic() >= self._next_check:
                    self.check_file()
                conn = self._connection()
                with conn.begin():
                    result = body(conn, *args, **kw)
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
    # COMMIT``, each inside its own savepoint, so one body's failure rolls back only its own
    # statements. On SQLite the commit (WAL frames for every touched page) costs more than the
    # statements, so concurrent enrollments share it; a lone writer pays the same as before.
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
            self.check_file(full=self._vanished is not None or time.monotonic() >= self._next_check)
            conn = self._connection()
            with conn.begin():
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                if len(batch) == 1:
                    item = batch[0]
                    results.append((True, item.body(conn, *item.args, **item.kw)))
                else:
                    results = self._run_batch(conn, batch)
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
        # The last connection's close removes -wal/-shm: only the database file itself must
        # be found again should this object be used after close.
        self._opened = {p: ids for p, ids in self._opened.items() if p == self._path}
