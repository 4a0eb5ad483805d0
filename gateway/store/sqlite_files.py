"""What the SQLite engine (:mod:`gateway.store.sqlite_engine`) keeps around its connection:
which driver errors mean "busy" or "the file cannot be used", the background WAL checkpointer,
and the watch that notices a database file deleted or replaced under a running gateway.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import NoReturn

import sqlalchemy as sa

from gateway.store.outage import (
    DatabaseUnavailable,
    Health,
    companions,
    log,
    private_directory,
    private_files,
)

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


class Checkpointer:
    """Passive WAL checkpoints off the event loop (see :mod:`gateway.store.sqlite_engine`).

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
        # ``Event.set`` takes a lock and notifies; while the flag is still up, the thread has
        # not yet cleared it, and it clears before it checkpoints, so this commit is covered.
        if not self._dirty.is_set():
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


class FileWatch:
    """The database file and its -wal/-shm as opened, by (st_dev, st_ino).

    A file deleted or replaced under a running gateway would take every later write into a
    file nobody else can see (and a new process would start an empty one): from the first
    time :meth:`check` notices, every call raises :class:`DatabaseUnavailable`, for good.
    """

    def __init__(self, path: Path | None, *, create: bool, health: Health) -> None:
        self.path = path
        self._create = create
        self._health = health
        self.opened: dict[Path, tuple[int, int]] = {}
        #: The database file as a string and its ids once recorded: the per-batch check
        #: stats it without pathlib or a walk over ``opened``.
        self._main: tuple[str, tuple[int, int]] | None = None
        self.vanished: str | None = None
        self.next_check = 0.0

    def prepare(self) -> None:
        """Before each (re)connect: never create a database that existed (deleted under us)
        or that the caller forbade creating; create a new one 0600 in a 0700 directory."""
        path = self.path
        if path is None:
            return
        if self.opened or not self._create:
            if not path.exists():
                raise DatabaseUnavailable(f"{path} does not exist")
        else:
            private_directory(path.parent)
        private_files(path)

    def record(self) -> None:
        """Remember the files that exist now (-wal/-shm appear with the first transaction)."""
        assert self.path is not None
        for path in (self.path, *companions(self.path)):
            if path not in self.opened:
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                self.opened[path] = (st.st_dev, st.st_ino)
                if path == self.path:
                    self._main = (str(path), self.opened[path])

    def check(self, *, full: bool = True) -> None:
        """Raise :class:`DatabaseUnavailable` if the database file (``full``: or its -wal or
        -shm) was deleted or replaced since it was opened. One ``stat`` per file."""
        if self.vanished is not None:
            raise DatabaseUnavailable(self.vanished)
        if not full:
            if self._main is not None:
                self._compare(*self._main)
            return
        if not self.opened:
            return
        self.next_check = time.monotonic() + FILE_CHECK_INTERVAL
        for path, opened in self.opened.items():
            self._compare(str(path), opened)
        if len(self.opened) < 3:
            self.record()

    def _compare(self, path: str, opened: tuple[int, int]) -> None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._vanish(f"{path} was deleted while the gateway had it open")
        if (st.st_dev, st.st_ino) != opened:
            self._vanish(f"{path} was replaced while the gateway had it open")

    def due(self) -> bool:
        """Whether the next read should run the full :meth:`check` first."""
        return self.vanished is not None or time.monotonic() >= self.next_check

    def closed(self) -> None:
        """The last connection's close removes -wal/-shm: only the database file itself must
        be found again should the database be used after close."""
        self.opened = {p: ids for p, ids in self.opened.items() if p == self.path}

    def _vanish(self, reason: str) -> NoReturn:
        self.vanished = reason
        log.error(
            "database file gone: %s; refusing every store operation until restarted "
            "(restore the database from a backup; it is not created again)",
            reason,
        )
        self._health.up = False
        raise DatabaseUnavailable(reason)
