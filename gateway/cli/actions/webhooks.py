"""``certgate webhooks list|pending``: receivers from ``[webhooks]``, rows from the outbox.
Neither ever shows a secret; ``list`` shows a receiver's URL without its query string."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit, urlunsplit

from gateway.cli.common import EXIT_OK, emit, table, ts
from gateway.cli.opening import StoreOnly
from gateway.errors import BadRequest
from gateway.webhooks.listing import pending_entries, state_counts

LIST_HEADERS = ["NAME", "URL", "EVENTS", "PENDING", "DELIVERED", "ABANDONED"]
PENDING_HEADERS = ["ID", "WEBHOOK", "EVENT", "ATTEMPTS", "QUEUED", "NEXT", "LAST"]


def _shown(url: str) -> str:
    """The URL without query or fragment (a receiver's token may ride in the query)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


async def cmd_list(c: StoreOnly, args: argparse.Namespace) -> int:
    counts = await c.store.read(state_counts)
    rows, data = [], []
    for name, hook in sorted(c.config.webhooks.receivers.items()):
        n = {state: counts.get((name, state), 0) for state in ("pending", "delivered", "abandoned")}
        events = sorted(hook.events)
        rows.append((name, _shown(hook.url), ",".join(events), *n.values()))
        data.append({"name": name, "url": _shown(hook.url), "events": events, **n})
    emit(args, data, table(rows, LIST_HEADERS))
    return EXIT_OK


async def cmd_pending(c: StoreOnly, args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 10_000:
        raise BadRequest("--limit: between 1 and 10000")
    entries = await c.store.read(pending_entries, args.webhook, args.limit)
    rows = [
        (
            e.id,
            e.webhook,
            e.event,
            e.attempts,
            ts(e.created_at),
            ts(e.next_attempt_at),
            e.last_error or (str(e.last_status) if e.last_status else ""),
        )
        for e in entries
    ]
    data = [
        {
            "id": e.id,
            "webhook": e.webhook,
            "event": e.event,
            "attempts": e.attempts,
            "queued_at": e.created_at.isoformat(),
            "next_attempt_at": e.next_attempt_at.isoformat(),
            "last_status": e.last_status,
            "last_error": e.last_error,
        }
        for e in entries
    ]
    emit(args, data, table(rows, PENDING_HEADERS))
    return EXIT_OK
