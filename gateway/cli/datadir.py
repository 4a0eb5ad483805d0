"""The data directory a CLI call acts on, and whether the call may create it.

Only ``certgate init`` and ``certgate serve`` create a data directory (and with it the database
and the local CA). Every other command acts on an existing gateway: run against a directory
that holds none -- a mistyped ``--data``, a forgotten ``--config`` -- it stops with one line
naming the directory and where that name came from, instead of approving, revoking or adding
users in a brand-new gateway with a CA nobody trusts.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by main() for every command: keep the module itself light
    from gateway.config import Config


class DataDirError(Exception):
    """The data directory is missing, holds no gateway, or cannot be created."""


def data_dir_source(config: Config, args: argparse.Namespace) -> str:
    """Where the data directory's name came from, for the operator to fix it there."""
    from gateway.config import DEFAULTS

    if getattr(args, "data", None) is not None:
        return "--data"
    if os.environ.get("CERTGATE_DATA"):
        return "$CERTGATE_DATA"
    if config.file != DEFAULTS and config.data_dir != Path(".certgate").absolute():
        return f"[data] dir in {config.file}"
    return "the default ./.certgate"


def sqlite_file(config: Config) -> Path | None:
    """The SQLite database file the store opens, or None for a database server."""
    import sqlalchemy as sa

    from gateway.store import DEFAULT_DB_NAME

    if config.store_url is None:
        return config.data_dir / DEFAULT_DB_NAME
    url = sa.engine.make_url(config.store_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    return Path(url.database)


def prepare_data_dir(config: Config, args: argparse.Namespace, *, create: bool) -> None:
    """Create the data directory (``create``) or insist that it holds a gateway already."""
    directory = config.data_dir
    where = f"{directory} ({data_dir_source(config, args)})"
    if directory.exists() and not directory.is_dir():
        raise DataDirError(f"{where}: the data directory is a file, not a directory")
    if create:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataDirError(
                f"{where}: cannot create the data directory: {exc.strerror or exc}"
            ) from None
        return
    if not directory.is_dir():
        raise DataDirError(
            f"{where}: no such data directory; `certgate init` creates a gateway there"
        )
    database = sqlite_file(config)
    if database is not None and not database.is_file():
        raise DataDirError(
            f"{where}: no certgate database ({database}); `certgate init` creates a gateway there"
        )


async def require_schema(config: Config) -> None:
    """On a database server (PostgreSQL), certgate's tables must exist already: ``certgate
    init`` creates them. An unreachable server is left to the store's own error."""
    if config.store_url is None or sqlite_file(config) is not None:
        return
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    url = sa.engine.make_url(config.store_url)
    engine = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": 5})
    try:
        async with engine.connect() as conn:
            present = await conn.run_sync(lambda c: sa.inspect(c).has_table("alembic_version"))
    except (OSError, TimeoutError, sa.exc.SQLAlchemyError):
        return
    finally:
        await engine.dispose()
    if not present:
        shown = url.render_as_string(hide_password=True)
        raise DataDirError(
            f"{shown} ([store] url in {config.file}): no certgate tables in this database; "
            "`certgate init` creates them"
        )


def require_local_cas(config: Config, args: argparse.Namespace) -> None:
    """Every local CA connector's CA must exist in the data directory: with a database server
    the database may well exist while this directory is not the one holding its CA (a mistyped
    ``--data``), and opening the connector would create a new CA there.

    The CLI knows connectors by entry point only (import-linter contract): a connector class
    with material of its own in the data directory says what is missing through its optional
    static method ``missing_material(data_dir, name) -> str | None``."""
    from importlib.metadata import entry_points

    directory = config.data_dir
    for name, connector in config.connectors.items():
        # gateway.server.wiring.CONNECTOR_GROUP, not imported: this module stays light.
        for ep in entry_points(group="certgate.connectors", name=connector.type):
            missing = getattr(ep.load(), "missing_material", None)
            problem = None if missing is None else missing(directory, name)
            if problem is not None:
                raise DataDirError(
                    f"{directory} ({data_dir_source(config, args)}): {problem}; "
                    "`certgate init` creates it"
                )


def store_url(config: Config) -> str:
    """The database URL the store opens: ``[store] url``, else SQLite in the data directory."""
    from gateway.store import default_sqlite_url

    return config.store_url or default_sqlite_url(config.data_dir)


def shown_url(config: Config) -> str:
    """The database URL for an operator message: password hidden."""
    import sqlalchemy as sa

    return sa.engine.make_url(store_url(config)).render_as_string(hide_password=True)
