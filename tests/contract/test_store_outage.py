"""Issue #12: the store under outages. A vanished SQLite file is noticed and never silently
recreated; database files are private whatever the umask; an unreachable or restarted
PostgreSQL gives the retryable StoreUnavailable (never a driver error), and a pool of
connections the server dropped costs no failed request."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from gateway.errors import StoreUnavailable
from gateway.model import RequestState
from gateway.store import DatabaseUnavailable, default_sqlite_url, open_store
from tests.contract.conftest import StepClock
from tests.contract.store_records import issued
from tests.helpers import free_port


def db_path(url: str) -> Path:
    return Path(sa.make_url(url).database or "")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


async def test_deleted_sqlite_file_fails_readiness_and_every_write_and_is_not_recreated(
    tmp_path: Path, clock: StepClock, caplog: pytest.LogCaptureFixture
) -> None:
    url = default_sqlite_url(tmp_path / "data")
    store = open_store(url, clock=clock.now)
    try:
        await store.migrate()
        await issued(store, clock)
        await store.ping()
        database = db_path(url)
        for suffix in ("", "-wal", "-shm"):
            database.with_name(database.name + suffix).unlink(missing_ok=True)
        with caplog.at_level(logging.ERROR, logger="certgate.store"):
            with pytest.raises(StoreUnavailable):
                await store.ping()
            for _ in range(3):
                with pytest.raises(StoreUnavailable):
                    await issued(store, clock)
                with pytest.raises(StoreUnavailable):
                    await store.list_requests(RequestState.ISSUED, limit=10)
        assert not database.exists()
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert str(database) in errors[0].getMessage()
        assert "deleted" in errors[0].getMessage()
    finally:
        await store.close()
    assert not database.exists()


async def test_a_write_right_after_the_file_is_deleted_is_refused(
    tmp_path: Path, clock: StepClock
) -> None:
    """Every write batch checks the file itself, not only the once-a-second check."""
    url = default_sqlite_url(tmp_path)
    store = open_store(url, clock=clock.now)
    try:
        await store.migrate()
        await issued(store, clock)
        db_path(url).unlink()
        with pytest.raises(StoreUnavailable):
            await issued(store, clock)
    finally:
        await store.close()


async def test_replaced_sqlite_file_is_refused(tmp_path: Path, clock: StepClock) -> None:
    url = default_sqlite_url(tmp_path)
    store = open_store(url, clock=clock.now)
    try:
        await store.migrate()
        database = db_path(url)
        other = tmp_path / "other.db"
        other.write_bytes(database.read_bytes())
        os.replace(other, database)
        with pytest.raises(StoreUnavailable):
            await issued(store, clock)
    finally:
        await store.close()


async def test_new_database_files_are_private_whatever_the_umask(
    tmp_path: Path, clock: StepClock, umask_zero: None
) -> None:
    url = default_sqlite_url(tmp_path / "new" / "data")
    store = open_store(url, clock=clock.now)
    try:
        await store.migrate()
        await issued(store, clock)
        database = db_path(url)
        assert mode(database.parent) == 0o700
        assert mode(database.parent.parent) == 0o700
        for suffix in ("", "-wal", "-shm"):
            assert mode(database.with_name(database.name + suffix)) == 0o600, suffix
    finally:
        await store.close()


async def test_an_existing_world_readable_database_is_made_private(
    tmp_path: Path, clock: StepClock, umask_zero: None
) -> None:
    url = default_sqlite_url(tmp_path)
    store = open_store(url, clock=clock.now)
    await store.migrate()
    await store.close()
    database = db_path(url)
    os.chmod(database, 0o644)
    store = open_store(url, clock=clock.now)
    try:
        await issued(store, clock)
        for suffix in ("", "-wal", "-shm"):
            assert mode(database.with_name(database.name + suffix)) == 0o600, suffix
    finally:
        await store.close()


async def test_create_false_never_creates_the_file(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path)
    store = open_store(url, create=False)
    try:
        with pytest.raises(StoreUnavailable):
            await store.migrate()
    finally:
        await store.close()
    assert not db_path(url).exists()


async def test_unreachable_postgresql_is_store_unavailable_with_the_cause() -> None:
    store = open_store(f"postgresql+asyncpg://certgate:secret@127.0.0.1:{free_port()}/certgate")
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await store.ping()
        assert "Connect call failed" in caught.value.cause or "refused" in caught.value.cause
        assert caught.value.retry_after > 0
        assert "secret" not in caught.value.cause
    finally:
        await store.close()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_terminated_postgresql_connections_cost_no_failed_request(
    store_url: str, clock: StepClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(store_url, clock=clock.now)
    try:
        await store.migrate()
        # Several pooled connections, all about to go stale.
        await asyncio.gather(*(issued(store, clock) for _ in range(4)))
        name = sa.make_url(store_url).database
        admin = await asyncpg.connect(store_url.replace("+asyncpg", ""), timeout=5)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await admin.close()
        assert killed >= 1
        with caplog.at_level(logging.INFO, logger="certgate.store"):
            await asyncio.gather(*(issued(store, clock) for _ in range(4)))
            for _ in range(2):
                await issued(store, clock)
                await store.ping()
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        retried = [r for r in caplog.records if "running again" in r.getMessage()]
        assert retried  # a stale connection was met, and cost no request
        assert len(await store.list_requests(RequestState.ISSUED, limit=20)) == 10
    finally:
        await store.close()


async def test_a_store_used_again_after_close_is_not_mistaken_for_a_vanished_one(
    tmp_path: Path, clock: StepClock
) -> None:
    url = default_sqlite_url(tmp_path)
    store = open_store(url, clock=clock.now)
    try:
        await store.migrate()
        await issued(store, clock)
        await store.close()  # last connection: SQLite removes -wal and -shm
        await issued(store, clock)
        await store.ping()
    finally:
        await store.close()
