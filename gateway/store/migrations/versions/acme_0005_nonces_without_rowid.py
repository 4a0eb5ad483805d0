"""ACME: the nonce table without a rowid on SQLite.

Every ACME POST deletes one nonce and inserts the next. In a rowid table that is the table's
row and the primary-key index's entry each, plus the expiry index: about four pages written to
the WAL per POST. Clustered on the nonce value (``WITHOUT ROWID``) the row is its key-index
entry, and the values the front-end now issues start with their expiry (protocols/acme/base.py),
so a POST's delete and insert touch the same last pages: two pages. PostgreSQL has no rowid;
its table is unchanged.

Revision ID: acme_0005
Revises: acme_0004
Create Date: 2026-12-04 12:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "acme_0005"
down_revision: str | None = "acme_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild(rowid: bool) -> None:
    """Recreate ``acme_nonces`` (same columns, constraint and index names as acme_0001) with
    or without a rowid, keeping its rows."""
    if op.get_bind().dialect.name != "sqlite":
        return
    suffix = "" if rowid else " WITHOUT ROWID"
    op.execute(
        "CREATE TABLE acme_nonces_new (value VARCHAR(64) NOT NULL, "
        "expires_at VARCHAR(32) NOT NULL, "
        f"CONSTRAINT pk_acme_nonces PRIMARY KEY (value)){suffix}"
    )
    op.execute(
        "INSERT INTO acme_nonces_new (value, expires_at) SELECT value, expires_at FROM acme_nonces"
    )
    op.drop_index("ix_acme_nonces_expires_at", table_name="acme_nonces")
    op.drop_table("acme_nonces")
    op.rename_table("acme_nonces_new", "acme_nonces")
    op.create_index("ix_acme_nonces_expires_at", "acme_nonces", ["expires_at"])


def upgrade() -> None:
    _rebuild(rowid=False)


def downgrade() -> None:
    _rebuild(rowid=True)
