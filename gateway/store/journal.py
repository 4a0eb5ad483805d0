"""``SQLJournal``: the local CA's :class:`gateway.ports.IssuanceJournal` in the store's
database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from gateway.store.engine import Database, Mode
from gateway.store.repository import StoreQueries


class SQLJournal:
    """:class:`gateway.ports.IssuanceJournal` in the ``ca_journal`` table of the same database.

    ``put`` is a single INSERT (plus a read when it lost the race on the primary key), so a local
    CA that crashed after signing finds its certificate again and never signs twice.
    """

    def __init__(
        self, database: Database, queries: StoreQueries, clock: Callable[[], datetime]
    ) -> None:
        self._db = database
        self._q = queries
        self._clock = clock

    async def get(self, request_id: str) -> bytes | None:
        return await self._db.run(Mode.AUTOCOMMIT, self._q.journal_get, request_id)

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        try:
            return await self._db.run(
                Mode.AUTOCOMMIT, self._q.journal_put, request_id, certificate_der, self._clock()
            )
        except sa.exc.IntegrityError:
            # Rows are never deleted, so the one that won the race is there to be read.
            existing = await self.get(request_id)
            if existing is None:
                raise
            return existing
