"""FileWatch's checks (the per-batch one stats the database file alone) and the
checkpointer's poke (a flag already up is left alone)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.store.outage import DatabaseUnavailable, Health
from gateway.store.sqlite_files import Checkpointer, FileWatch


def _watch(tmp_path: Path) -> tuple[FileWatch, Path]:
    db = tmp_path / "x.db"
    for path in (db, tmp_path / "x.db-wal", tmp_path / "x.db-shm"):
        path.write_bytes(b"")
    watch = FileWatch(db, create=True, health=Health(str(db)))
    watch.record()
    return watch, db


def test_batch_check_ignores_the_companions_and_full_check_does_not(tmp_path: Path) -> None:
    watch, _db = _watch(tmp_path)
    (tmp_path / "x.db-wal").unlink()
    watch.check(full=False)
    with pytest.raises(DatabaseUnavailable) as caught:
        watch.check()
    assert caught.value.cause.endswith("x.db-wal was deleted while the gateway had it open")


@pytest.mark.parametrize("full", [False, True])
def test_a_deleted_database_file_is_refused_for_good(tmp_path: Path, full: bool) -> None:
    watch, db = _watch(tmp_path)
    db.unlink()
    with pytest.raises(DatabaseUnavailable) as caught:
        watch.check(full=full)
    assert caught.value.cause == f"{db} was deleted while the gateway had it open"
    db.write_bytes(b"")
    with pytest.raises(DatabaseUnavailable) as again:
        watch.check(full=False)
    assert again.value.cause == caught.value.cause


@pytest.mark.parametrize("full", [False, True])
def test_a_replaced_database_file_is_refused(tmp_path: Path, full: bool) -> None:
    watch, db = _watch(tmp_path)
    other = tmp_path / "other"
    other.write_bytes(b"")
    os.replace(other, db)
    with pytest.raises(DatabaseUnavailable) as caught:
        watch.check(full=full)
    assert caught.value.cause == f"{db} was replaced while the gateway had it open"


def test_the_batch_check_still_watches_the_file_after_close(tmp_path: Path) -> None:
    watch, db = _watch(tmp_path)
    watch.closed()
    watch.check(full=False)
    db.unlink()
    with pytest.raises(DatabaseUnavailable) as caught:
        watch.check(full=False)
    assert caught.value.cause == f"{db} was deleted while the gateway had it open"


def test_poke_raises_the_flag_once(tmp_path: Path) -> None:
    checkpointer = Checkpointer(str(tmp_path / "x.db"), interval=3600)
    try:
        assert not checkpointer._dirty.is_set()
        checkpointer.poke()
        assert checkpointer._dirty.is_set()
        checkpointer.poke()
        assert checkpointer._dirty.is_set()
    finally:
        checkpointer.close()
