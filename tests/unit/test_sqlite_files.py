"""FileWatch's checks (the per-batch one stats the database file alone), the
checkpointer's poke (a flag already up is left alone) and its log restart under load."""

from __future__ import annotations

import os
import sqlite3
import time
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


def _write_under_load(path: Path, checkpointer: Checkpointer, commits: int) -> int:
    """``commits`` one-row commits of about a page each, half a millisecond apart (a round's
    copy and fsyncs take longer than that, as under sustained load), poking the checkpointer
    after each like the engine; returns the largest WAL file size seen."""
    conn = sqlite3.connect(path, isolation_level=None)
    largest = 0
    try:
        conn.execute("PRAGMA busy_timeout = 1000")  # a restart holds the write lock briefly
        conn.execute("PRAGMA synchronous = NORMAL")  # as the engine: no fsync per commit
        for i in range(commits):
            conn.execute("INSERT INTO t (id, body) VALUES (?, ?)", (i, os.urandom(3000)))
            checkpointer.poke()
            largest = max(largest, os.stat(f"{path}-wal").st_size)
            time.sleep(0.0005)
    finally:
        conn.close()
    return largest


def _rows(path: Path) -> tuple[str, list[tuple[int, int]]]:
    conn = sqlite3.connect(path)
    try:
        (check,) = conn.execute("PRAGMA integrity_check").fetchone()
        return check, conn.execute("SELECT id, length(body) FROM t ORDER BY id").fetchall()
    finally:
        conn.close()


def test_the_checkpointer_restarts_a_growing_log_and_keeps_every_row(tmp_path: Path) -> None:
    """Under writes that never pause, a round past ``restart_frames`` restarts the log (the
    file stops growing; it was about 3 pages a commit without it), and the database holds
    the same rows as with passive checkpoints alone (restart_frames out of reach)."""
    commits = 1000
    found = {}
    for name, restart_frames in (("restart", 40), ("passive", 10**9)):
        path = tmp_path / f"{name}.db"
        setup = sqlite3.connect(path, isolation_level=None)
        setup.execute("PRAGMA journal_mode = WAL")
        setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        setup.close()
        checkpointer = Checkpointer(str(path), interval=0.02, restart_frames=restart_frames)
        try:
            largest = _write_under_load(path, checkpointer, commits)
        finally:
            checkpointer.close()
        found[name] = (largest, _rows(path))
    (restarted, (check, rows)), (_, plain) = found["restart"], found["passive"]
    assert (check, rows) == plain
    assert check == "ok"
    assert rows == [(i, 3000) for i in range(commits)]
    # the whole run wrote ~commits * 4 KiB of frames; a restarted log stays a fraction of it
    assert restarted < commits * 4096 // 3


def test_a_reader_on_older_frames_keeps_the_restart_off_the_write_lock(tmp_path: Path) -> None:
    """While a read transaction holds an old snapshot, the passive rounds cannot copy every
    frame and no restart is tried: a writer that never waits (busy_timeout 0, as the engine's
    event-loop connection) is never refused for the write lock."""
    path = tmp_path / "x.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode = WAL")
    setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    setup.execute("INSERT INTO t (id, body) VALUES (-1, x'00')")
    setup.close()
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # holds this snapshot
    checkpointer = Checkpointer(str(path), interval=0.01, restart_frames=20)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("PRAGMA busy_timeout = 0")
        writer.execute("PRAGMA synchronous = NORMAL")
        for i in range(400):
            writer.execute("INSERT INTO t (id, body) VALUES (?, ?)", (i, os.urandom(3000)))
            checkpointer.poke()
            time.sleep(0.0005)
    finally:
        writer.close()
        checkpointer.close()
        reader.rollback()
        reader.close()
    assert _rows(path)[0] == "ok"
