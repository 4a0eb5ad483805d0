"""FileWatch's checks (the per-batch one stats the database file alone), the
checkpointer's poke (a flag already up is left alone) and its log restart under writes that
never pause."""

from __future__ import annotations

import os
import sqlite3
import threading
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


#: The tests' restart threshold, in frames (the default's 16 MiB would take seconds to fill).
_RESTART = 64


def _table(path: Path) -> None:
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode = WAL")
    setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    setup.close()


def _write_without_pause(
    path: Path, checkpointer: Checkpointer, seconds: float, writers: int = 2
) -> tuple[int, int]:
    """``writers`` connections, as the engine's (``busy_timeout`` 0, ``synchronous`` NORMAL,
    ``journal_size_limit``), commit a ~page-sized row every half millisecond for ``seconds``,
    retrying a busy write, and poke the checkpointer after each commit: returns the largest
    -wal size seen and the rows written."""
    deadline = time.monotonic() + seconds
    written = [0] * writers
    largest = 0

    def write(k: int) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 1000")  # opening may meet a restart
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA journal_size_limit = {_RESTART * 4096}")
            conn.execute("PRAGMA busy_timeout = 0")
            i = k
            while time.monotonic() < deadline:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute("INSERT INTO t (id, body) VALUES (?, ?)", (i, os.urandom(3000)))
                    conn.execute("COMMIT")
                except sqlite3.OperationalError:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                else:
                    i += writers
                    written[k] += 1
                    checkpointer.poke()
                time.sleep(0.0005)
        finally:
            conn.close()

    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        largest = max(largest, _wal_size(path))
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    return largest, sum(written)


def _wal_size(path: Path) -> int:
    """The -wal file's size; 0 once the last connection closed and SQLite removed it."""
    try:
        return os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return 0


def _check(path: Path) -> tuple[str, int]:
    conn = sqlite3.connect(path)
    try:
        (check,) = conn.execute("PRAGMA integrity_check").fetchone()
        (rows,) = conn.execute("SELECT count(*) FROM t WHERE length(body) = 3000").fetchone()
        return check, rows
    finally:
        conn.close()


def test_the_log_stays_bounded_under_writes_that_never_pause(tmp_path: Path) -> None:
    """Passive rounds alone never see every frame copied when a write begins, so the log grows
    for as long as the writes last; past ``restart_frames`` a round restarts it, and the file
    stays within a few rounds' writes of that (trimmed to ``journal_size_limit`` after each
    restart).
    Every committed row is in the database either way."""
    found = {}
    for name, restart_frames in (("passive", 10**9), ("restart", _RESTART)):
        path = tmp_path / f"{name}.db"
        _table(path)
        checkpointer = Checkpointer(str(path), interval=0.02, restart_frames=restart_frames)
        try:
            largest, written = _write_without_pause(path, checkpointer, seconds=1.2)
            last = _wal_size(path)  # while the checkpointer's connection keeps the file
        finally:
            checkpointer.close()
        assert _check(path) == ("ok", written)
        found[name] = (max(largest, last), written)
    (grown, plain_rows), (bounded, rows) = found["passive"], found["restart"]
    assert plain_rows > 1000 and rows > 1000  # the writes did go on
    assert grown > plain_rows * 4096 // 2  # about a page per commit, never reused
    # seen here: passive 24-42 MB, restarted 1.2-2.2 MB (a few rounds' writes past the
    # threshold when a round finds a writer mid-commit)
    assert bounded * 4 < grown
    assert bounded < 32 * _RESTART * 4096


def test_a_reader_on_older_frames_keeps_the_restart_off_the_write_lock(tmp_path: Path) -> None:
    """While a read transaction holds an old snapshot the passive rounds cannot copy every
    frame, and no restart is tried: a writer that never waits (``busy_timeout`` 0, as the
    engine's) is never refused the write lock."""
    path = tmp_path / "x.db"
    _table(path)
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
    assert _check(path) == ("ok", 400)
