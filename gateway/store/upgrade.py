"""Schema migrations run programmatically (no ``alembic.ini`` at runtime).

Several gateway processes may start at once, so the upgrade runs inside one write
transaction that excludes every other migrator: PostgreSQL takes a transaction-scoped
advisory lock (DDL is transactional there, so the whole upgrade commits or nothing does);
SQLite holds the database write lock from ``BEGIN IMMEDIATE``. The second process then finds
the schema at head and does nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

#: ``pg_advisory_xact_lock`` key: a stable 64-bit number derived from a name.
ADVISORY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"certgate.store.migrate").digest()[:8], "big", signed=True
)


def alembic_config() -> Config:
    """An in-memory Alembic configuration pointing at the packaged migrations."""
    cfg = Config()
    # ConfigParser interpolation: a literal '%' in the install path must be doubled.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return cfg


def head_revisions() -> frozenset[str]:
    """Every head: each protocol package's tables are a branch off the core migration
    (``down_revision = "0001"``, ``branch_labels = ("<protocol>",)``), so that front-ends
    developed side by side never fight over one linear history."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads, "no migrations packaged"
    return frozenset(heads)


def head_revision() -> str:
    """The single head when there is exactly one (tests of the core migration)."""
    return sorted(head_revisions())[0]


def current_revisions(conn: Connection) -> frozenset[str]:
    return frozenset(MigrationContext.configure(conn).get_current_heads())


def upgrade_to_head(conn: Connection) -> None:
    """Transaction body: serialize against other migrators, then ``alembic upgrade head``
    on ``conn`` (env.py uses this connection and its already-open transaction)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    if current_revisions(conn) == head_revisions():
        return  # the common case at start-up: nothing to load, nothing to run
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "heads")
