"""Rate limits (RFC 8555 §6.6: 429 ``rateLimited`` with Retry-After).

Two kinds, for two costs:

* **Shared limits** on the operations that create state, newAccount (per client address) and
  newOrder (per account). They are counted in the database by one ``INSERT ... ON CONFLICT
  DO UPDATE ... RETURNING`` inside the transaction that already creates the account or the
  order, so every worker and every instance on the database sees the same count and the hot
  path gains a statement, not a transaction. Windows are fixed and numbered from the Unix
  epoch (``slot``), so all instances agree on them as far as their clocks agree.
* **Per-process request guards** (:class:`RateLimiter`): every POST per client address and
  per account, counted in memory. Counting each request in a shared row would put one hot
  row in every request's path; these only stop floods, and with N workers allow N times
  the configured rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from protocols.acme.messages import Problem
from protocols.acme.tables import acme_rate_counters


@dataclass(frozen=True)
class Limit:
    """A shared fixed-window limit: ``key`` (what is counted), at most ``limit`` hits per
    ``window`` seconds; ``slot`` = Unix time // window."""

    key: str
    limit: int
    window: int
    slot: int

    @classmethod
    def of(cls, key: str, limit: int, window: int, now: datetime) -> Limit | None:
        """The limit for ``key`` now, or ``None`` when switched off (``limit`` 0)."""
        if limit <= 0:
            return None
        return cls(key[:200], limit, window, int(now.timestamp()) // window)

    def retry_after(self, now: datetime) -> int:
        """Seconds until the next window starts (at least 1)."""
        return max(1, (self.slot + 1) * self.window - int(now.timestamp()))


@dataclass(frozen=True)
class OverLimit:
    """What a write body returns, having written nothing else, when a limit is exceeded."""

    limit: Limit

    def problem(self, what: str, now: datetime) -> Problem:
        limit = self.limit
        return Problem.rate_limited(
            f"too many {what}: at most {limit.limit} per {limit.window}s",
            limit.retry_after(now),
        )


#: The shared counter (run by the ACME repository's ``count_hit``): +1 in the same window,
#: back to 1 in a new one, in one statement, so concurrent instances never lose a hit (the row
#: lock, or SQLite's write lock, orders them); SET expressions see the row as it was. The same
#: SQL runs on PostgreSQL and SQLite (>= 3.35 for RETURNING); ``{key}`` and ``{slot}`` are
#: the placeholders of the driver that runs it.
COUNT_HIT_SQL = (
    'INSERT INTO acme_rate_counters ("key", slot, count) VALUES ({key}, {slot}, 1) '
    'ON CONFLICT ("key") DO UPDATE SET '
    "count = CASE WHEN acme_rate_counters.slot = excluded.slot "
    "THEN acme_rate_counters.count + 1 ELSE 1 END, slot = excluded.slot "
    "RETURNING count"
)
assert acme_rate_counters.name == "acme_rate_counters"


@dataclass
class RateLimiter:
    """Per-process fixed-window request counters per key (account id or client address).
    ``limit`` 0 disables."""

    window: int
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)

    def hit(self, key: str, limit: int) -> None:
        if limit <= 0:
            return
        slot = int(time.monotonic()) // max(self.window, 1)
        seen_slot, count = self.counts.get(key, (slot, 0))
        if seen_slot != slot:
            count = 0
            if len(self.counts) > 100_000:
                self.counts.clear()
        count += 1
        self.counts[key] = (slot, count)
        if count > limit:
            retry = max(1, (slot + 1) * self.window - int(time.monotonic()))
            raise Problem.rate_limited(f"too many requests for {key}; limit {limit}", retry)
