"""The durable store: requests, certificate inventory, revocations, audit trail and the local
CA's issuance journal, on SQLite (embedded default) or PostgreSQL (shared by many instances).

Public API: :class:`SQLStore` (implements :class:`gateway.ports.Store`; ``store.journal``
implements :class:`gateway.ports.IssuanceJournal`), :func:`open_store`,
:func:`default_sqlite_url` and :data:`metadata` (the schema, for protocol packages that add
tables in later migrations; see :mod:`gateway.store.tables`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from gateway.store.engine import open_database
from gateway.store.sql import SQLJournal, SQLStore
from gateway.store.tables import metadata

__all__ = ["SQLJournal", "SQLStore", "default_sqlite_url", "metadata", "open_store"]

DEFAULT_DB_NAME = "certgate.db"


def default_sqlite_url(data_dir: Path) -> str:
    """``sqlite+aiosqlite:///<data_dir>/certgate.db`` (absolute path)."""
    path = (Path(data_dir) / DEFAULT_DB_NAME).resolve()
    return sa.URL.create("sqlite+aiosqlite", database=str(path)).render_as_string()


def open_store(
    url: str,
    *,
    clock: Callable[[], datetime] | None = None,
    busy_timeout: float = 10.0,
    pool_size: int = 10,
    max_overflow: int = 10,
) -> SQLStore:
    """A store for ``url`` (``sqlite+aiosqlite:///path``, ``postgresql+asyncpg://...``).

    Nothing connects until the first call; call :meth:`SQLStore.migrate` at start-up.
    ``busy_timeout`` (seconds) bounds how long an SQLite writer waits for another process;
    ``pool_size``/``max_overflow`` size the PostgreSQL pool per process.
    """
    database = open_database(
        url, busy_timeout=busy_timeout, pool_size=pool_size, max_overflow=max_overflow
    )
    return SQLStore(database, clock=clock)
