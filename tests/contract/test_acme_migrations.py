"""ACME's migrations that change a table's shape keep its rows (every backend of
tests/contract/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from gateway.store import SQLStore
from gateway.store.upgrade import alembic_config, current_revisions, head_revisions
from protocols.acme.tables import acme_nonces

T = datetime(2030, 1, 1, tzinfo=UTC)
NONCES = [("00a1b2c3d4e5f6first", T), ("zz-old-style", T + timedelta(days=1))]


def _migrate(target: str, *, down: bool) -> object:
    def run(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, target)

    return run


def _nonces(conn: Connection) -> tuple[list[tuple[str, datetime]], str]:
    """The nonce rows and, on SQLite, the table's DDL."""
    rows = conn.execute(sa.select(acme_nonces).order_by(acme_nonces.c.value))
    ddl = ""
    if conn.dialect.name == "sqlite":
        ddl = conn.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE name = 'acme_nonces'")
        ).scalar_one()
    return [(v, e) for v, e in rows], ddl


async def test_the_nonce_table_loses_its_rowid_and_keeps_its_rows(store: SQLStore) -> None:
    await store.write(_migrate("acme_0004", down=True))
    sqlite = store.dialect_name == "sqlite"
    rows = [{"value": v, "expires_at": e} for v, e in NONCES]
    await store.write(lambda conn: conn.execute(sa.insert(acme_nonces), rows))
    before, old_ddl = await store.read(_nonces)
    assert before == NONCES
    await store.write(_migrate("heads", down=False))
    assert await store.read(current_revisions) == head_revisions()
    after, new_ddl = await store.read(_nonces)
    assert after == before
    if sqlite:
        assert "WITHOUT ROWID" not in old_ddl and new_ddl.rstrip().endswith("WITHOUT ROWID")
    indexes = await store.read(lambda c: sa.inspect(c).get_indexes("acme_nonces"))
    assert [i["column_names"] for i in indexes] == [["expires_at"]]
    await store.write(_migrate("acme_0004", down=True))
    again, back_ddl = await store.read(_nonces)
    assert again == before and "WITHOUT ROWID" not in back_ddl
    await store.migrate()
