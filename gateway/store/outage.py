"""What the store does when its database cannot be used (issue #12): the retryable error, the
one log line per outage, and the file modes that keep the database private.

The database holds every CSR (a SCEP CSR carries its challenge password), ACME accounts,
user password hashes and the audit trail, so its files are 0600 in 0700 directories.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import sqlalchemy as sa

from gateway.errors import StoreUnavailable

log = logging.getLogger("certgate.store")


class DatabaseUnavailable(StoreUnavailable):
    """The database cannot be reached or used; ``cause`` (for logs and the operator's start-up
    message, never for clients) is the driver's message without SQL or parameters."""

    def __init__(self, cause: str, retry_after: int = 10) -> None:
        super().__init__(retry_after=retry_after)
        self.cause = cause


def describe(exc: BaseException) -> str:
    """``exc`` for a log line: the driver's own exception, never SQLAlchemy's text (which
    carries the statement and its parameters)."""
    if isinstance(exc, DatabaseUnavailable):
        return exc.cause
    inner = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    text = str(inner).splitlines()[0] if str(inner) else ""
    return f"{type(inner).__name__}: {text}"[:300]


class Health:
    """Logs the transitions between available and unavailable, once each."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.up: bool | None = None  # unknown until the first call

    def failed(self, exc: BaseException, retry_after: int = 10) -> DatabaseUnavailable:
        cause = describe(exc)
        if self.up is not False:
            # The first failure of all (start-up) is reported by the caller, in one line.
            if self.up is True:
                log.error("database %s unavailable: %s", self.what, cause)
            self.up = False
        return DatabaseUnavailable(cause, retry_after)

    def ok(self) -> None:
        if self.up is not True:
            if self.up is False:
                log.warning("database %s is available again", self.what)
            self.up = True


def private_directory(path: Path) -> None:
    """Create ``path`` (and parents) with mode 0700 whatever the umask; an existing directory
    is left as it is."""
    if path.is_dir():
        return
    private_directory(path.parent)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)


def private_files(database: Path) -> None:
    """Create the database file with mode 0600 before SQLite first opens it (SQLite gives
    the -wal and -shm files the database file's mode), and bring an existing database and
    its -wal/-shm down to 0600: they hold CSRs, which may carry a SCEP challenge password."""
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        os.fchmod(fd, 0o600)  # the umask cannot widen 0600, but make the mode explicit
        os.close(fd)
    for path in (database, *companions(database)):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.chmod(path, 0o600)


def companions(database: Path) -> tuple[Path, Path]:
    return database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")
