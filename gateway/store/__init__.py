"""The durable store: requests, certificate inventory, revocations, audit trail and the local
CA's issuance journal, on SQLite (embedded default) or PostgreSQL (shared by many instances).

Public API: :class:`SQLStore` (implements :class:`gateway.ports.Store`; ``store.journal``
implements :class:`gateway.ports.IssuanceJournal`), :func:`open_store`,
:func:`default_sqlite_url`, :data:`metadata` (the schema, for protocol packages that add
tables in later migrations; see :mod:`gateway.store.tables`) and the column types such tables
use, :class:`UTCDateTime` and :class:`JSONType`. Protocol packages with a
raw-SQLite repository of their own use :mod:`gateway.store.raw` (statements on the store's
transaction, no ``sqlite3`` import) and choose it when :attr:`SQLStore.raw_sqlite` is true.

Layout: an engine runs transaction bodies (:mod:`~gateway.store.engine`: SQLite in
:mod:`~gateway.store.sqlite_engine`, PostgreSQL in :mod:`~gateway.store.postgres`); a
repository is the bodies (:mod:`~gateway.store.repository`: Core, or raw SQLite in
:mod:`~gateway.store.sqlite_queries`); :class:`SQLStore` puts the two together. Both are
chosen once, here, from the URL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from gateway.store.engine import open_database
from gateway.store.journal import SQLJournal
from gateway.store.outage import DatabaseUnavailable, private_directory
from gateway.store.repository import queries_for
from gateway.store.sql import SQLStore
from gateway.store.tables import JSONType, UTCDateTime, metadata

__all__ = [
    "DatabaseUnavailable",
    "JSONType",
    "SQLJournal",
    "SQLStore",
    "UTCDateTime",
    "default_sqlite_url",
    "metadata",
    "open_store",
    "private_directory",
    "sqlite_file",
]

DEFAULT_DB_NAME = "certgate.db"


def default_sqlite_url(data_dir: Path) -> str:
    """``sqlite+aiosqlite:///<data_dir>/certgate.db`` (absolute path)."""
    path = (Path(data_dir) / DEFAULT_DB_NAME).resolve()
    return sa.URL.create("sqlite+aiosqlite", database=str(path)).render_as_string()


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (``None`` for PostgreSQL, in-memory and ``file:`` URIs)."""
    parsed = sa.make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else Path(database).absolute()


def open_store(
    url: str,
    *,
    clock: Callable[[], datetime] | None = None,
    busy_timeout: float = 10.0,
    pool_size: int = 20,
    max_overflow: int = 10,
    create: bool = True,
    raw_sqlite: bool = True,
    fast_postgres: bool = True,
) -> SQLStore:
    """A store for ``url`` (``sqlite+aiosqlite:///path``, ``postgresql+asyncpg://...``).

    Nothing connects until the first call; call :meth:`SQLStore.migrate` at start-up.
    ``busy_timeout`` (seconds) bounds how long an SQLite writer waits for another process;
    ``pool_size``/``max_overflow`` size the PostgreSQL pool per process. ``create=False``:
    never create the SQLite file (it must exist). A new SQLite file is created with mode 0600
    (its -wal/-shm follow) in a directory created 0700. ``raw_sqlite=False`` runs the plain
    SQLAlchemy Core repository on SQLite too (the contract tests compare it with the fast
    path; see :mod:`gateway.store.repository`); ``fast_postgres=False`` likewise runs the
    plain path on PostgreSQL.
    """
    database = open_database(
        url,
        busy_timeout=busy_timeout,
        pool_size=pool_size,
        max_overflow=max_overflow,
        create=create,
    )
    queries = queries_for(database.dialect_name, raw_sqlite=raw_sqlite, fast_postgres=fast_postgres)
    return SQLStore(database, queries, clock=clock)
