"""``certgate init DIR --database-url REF``: the site names its database before ``init`` creates
it, so a site made for several instances (docs/compose.yml, the container's
CERTGATE_DATABASE_URL_FILE) has its tables, CA journal and bootstrap accounts in PostgreSQL
from the start, and no SQLite file beside the CA."""

from __future__ import annotations

import asyncio
import os
import secrets
import tomllib
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from gateway.cli import EXIT_OK, main

PG_ADMIN_DSN = os.environ.get(
    "CERTGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _pg(sql: str, database: str | None = None) -> list[asyncpg.Record]:
    dsn = PG_ADMIN_DSN if database is None else PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL at {PG_ADMIN_DSN} unreachable ({type(exc).__name__})"
        if os.environ.get("CERTGATE_REQUIRE_PEERS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


@pytest.fixture
def database() -> Iterator[str]:
    name = f"certgate_init_{secrets.token_hex(6)}"
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.postgres
def test_site_is_initialised_in_the_named_database(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = PG_ADMIN_DSN.removeprefix("postgresql://").rsplit("/", 1)[0]
    url_file = tmp_path / "database-url"
    url_file.write_text(f"postgresql+asyncpg://{server}/{database}\n")
    site = tmp_path / "site"
    assert main(["init", str(site), "--database-url", f"file:{url_file}"]) == EXIT_OK
    with (site / "certgate.toml").open("rb") as fh:
        assert tomllib.load(fh)["store"] == {"url": f"file:{url_file}"}
    assert not (site / "data" / "certgate.db").exists()
    users = asyncio.run(_pg("SELECT username FROM est_users", database))
    assert [u["username"] for u in users] == ["est-bootstrap"]


def test_an_inline_password_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    url = "postgresql+asyncpg://certgate:hunter2@db/certgate"
    assert main(["init", str(site), "--database-url", url]) != EXIT_OK
    err = capsys.readouterr().err
    assert "--database-url" in err and "env:NAME or file:PATH" in err and "hunter2" not in err
    assert not (site / "certgate.toml").exists()


def test_database_url_needs_a_site_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "certgate.toml"
    cfg.write_text(f'[data]\ndir = "{tmp_path / "data"}"\n')
    assert main(["init", "-c", str(cfg), "--database-url", "env:X"]) != EXIT_OK
    assert "--database-url" in capsys.readouterr().err
