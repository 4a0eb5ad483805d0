"""Alembic environment for certgate's store.

At runtime :func:`gateway.store.upgrade.upgrade_to_head` hands in a connection that is
already inside the (locked) migration transaction, via ``config.attributes["connection"]``.
From the command line (``alembic -c <ini> revision --autogenerate``; set ``sqlalchemy.url`` in
the ini or ``CERTGATE_DATABASE_URL``) it follows Alembic's asyncio template: an async engine
and ``connection.run_sync``.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store.tables import metadata

config = context.config


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables in later migrations.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("CERTGATE_DATABASE_URL")
    if not url:
        raise RuntimeError("set sqlalchemy.url or CERTGATE_DATABASE_URL")
    return url


async def _run_async() -> None:
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_configure_and_run)
        await connection.commit()
    await engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
elif (given := config.attributes.get("connection")) is not None:
    _configure_and_run(given)
else:
    asyncio.run(_run_async())
