"""Database engines: how one transaction body runs on SQLite and on PostgreSQL.

Every store operation is a plain synchronous function ``body(conn, *args)`` on a SQLAlchemy
``Connection``, run in exactly one transaction by a :class:`Database`:

* PostgreSQL (``postgresql+asyncpg://``): an :class:`~sqlalchemy.ext.asyncio.AsyncEngine`;
  the body runs through :meth:`AsyncConnection.run_sync` in one transaction
  (:mod:`gateway.store.postgres`).
* SQLite (``sqlite+aiosqlite://`` or ``sqlite://``): the body runs *inline on the event loop*
  on one persistent ``sqlite3`` connection per process, write bodies grouped into one commit
  (:mod:`gateway.store.sqlite_engine`).

Which statements a body runs is the repository's business (:mod:`gateway.store.repository`),
not the engine's: an engine only runs bodies.

Outages (issue #12): a failure to reach the database (connection refused or dropped, SQLite
I/O errors, a lock held past ``busy_timeout``) is raised as :class:`DatabaseUnavailable`, a
:class:`~gateway.errors.StoreUnavailable` that every protocol renders as its retryable answer;
the cause is logged once per outage at ERROR (driver message only, never SQL parameters, which
may hold secrets) and recovery once at WARNING.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

P = ParamSpec("P")
T = TypeVar("T")

#: A transaction body: synchronous statements on ``conn``; it must not keep state between
#: attempts because SQLite may run it again after ``SQLITE_BUSY``.
Body = Callable[Concatenate[Connection, P], T]


class Mode(enum.Enum):
    """How a body runs."""

    #: One atomic transaction; on SQLite ``BEGIN IMMEDIATE`` (writers serialize up front).
    WRITE = "write"
    #: No explicit transaction: each statement commits (or reads the latest commit) on its
    #: own. For single-statement bodies this saves the BEGIN/COMMIT round trips.
    AUTOCOMMIT = "autocommit"


def driver_body(body: Callable[..., T]) -> Callable[..., T]:
    """Mark a body that is a coroutine on the *driver's* connection (asyncpg), for
    :class:`gateway.store.postgres.AsyncDatabase` only: it skips SQLAlchemy's connection,
    greenlet and result machinery, which cost the gateway about 0.15 ms per statement. It runs
    without an explicit transaction, so it must send one statement (PostgreSQL runs a single
    statement atomically), and that statement must be safe to send again after a dropped
    connection, since the engine cannot know whether it committed: the core store's are reads,
    or inserts keyed by a unique (protocol, transaction_id) whose replay is refused and answered
    with the committed row. Unique violations surface as ``sqlalchemy.exc.IntegrityError`` as
    on the plain path. SQLite never sees one (its repositories have none)."""
    body.driver_body = True  # type: ignore[attr-defined]
    return body


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
    pool_size: int = 20,
    max_overflow: int = 10,
    create: bool = True,
) -> Database:
    """Pick the engine for ``url``. Unknown backends are refused rather than half-supported.
    ``create=False``: an SQLite file that does not exist is not created."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        from gateway.store.sqlite_engine import SQLiteDatabase  # imports this module's Body/Mode

        return SQLiteDatabase(parsed, busy_timeout=busy_timeout, create=create)
    if backend == "postgresql":
        from gateway.store.postgres import AsyncDatabase  # imports this module's Body/Mode

        return AsyncDatabase(parsed, pool_size=pool_size, max_overflow=max_overflow)
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")
