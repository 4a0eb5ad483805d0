"""``certgate audit list|show``: the append-only audit trail, read-only."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.cli.actions.certs import normal_serial
from gateway.cli.common import EXIT_OK, emit, fields, table, ts
from gateway.cli.opening import StoreOnly
from gateway.durations import parse_duration
from gateway.errors import BadRequest, NotFound
from gateway.model import AuditEvent

if TYPE_CHECKING:  # the server's components: only the gateway-level commands get them
    from gateway.server.wiring import Components


AUDIT_HEADERS = ["ID", "AT", "EVENT", "ACTOR", "REQUEST", "SERIAL", "DETAIL"]
#: Longest DETAIL cell in the table; ``audit show`` and ``--json`` give all of it.
DETAIL_WIDTH = 60


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: a duration in the configuration's grammar (``12h``, ``7d``) back from now,
    or an ISO 8601 date or time (UTC unless it names its offset)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"--since {text!r}: expected a duration like 12h or 7d, or an ISO 8601 time like "
            "2026-01-31T08:00 or 2026-01-31"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def event_dict(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at,
        "event": e.event,
        "actor": e.actor,
        "request_id": e.request_id,
        "serial": e.serial,
        "detail": dict(e.detail),
    }


def _detail(e: AuditEvent) -> str:
    text = ", ".join(
        f"{k}={v if isinstance(v, str) else json.dumps(v, sort_keys=True)}"
        for k, v in sorted(e.detail.items())
    )
    return text if len(text) <= DETAIL_WIDTH else text[: DETAIL_WIDTH - 3] + "..."


async def cmd_audit_list(c: StoreOnly | Components, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise BadRequest("--limit must be at least 1")
    since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    events = await c.store.search_audit(
        since=since,
        events=tuple(args.type),
        serial=normal_serial(args.serial) if args.serial else None,
        request_id=args.request,
        limit=args.limit,
    )
    rows = [(e.id, ts(e.at), e.event, e.actor, e.request_id, e.serial, _detail(e)) for e in events]
    emit(args, [event_dict(e) for e in events], table(rows, AUDIT_HEADERS))
    return EXIT_OK


async def cmd_audit_show(c: StoreOnly | Components, args: argparse.Namespace) -> int:
    event = await c.store.get_audit(args.id)
    if event is None:
        raise NotFound(f"no audit event {args.id}")
    emit(args, event_dict(event), fields(event_dict(event)))
    return EXIT_OK
