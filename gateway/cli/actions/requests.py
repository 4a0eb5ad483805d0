"""``certgate requests list|show|approve|deny``: the enrollment requests and the approval
queue (AD CS "pending requests", certificate manager approval)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gateway.cli.common import EXIT_OK, actor, emit, fields, table, ts
from gateway.cli.opening import StoreOnly
from gateway.cli.records import print_outcome, request_dict
from gateway.errors import NotFound
from gateway.model import Issued, RequestRecord, RequestState
from gateway.pkix import pem_chain

if TYPE_CHECKING:  # the server's components: only the gateway-level commands get them
    from gateway.server.wiring import Components


REQUEST_HEADERS = ["ID", "STATE", "WAITING", "TEMPLATE", "REQUESTER", "PROTOCOL", "CREATED"]


async def cmd_requests_list(c: StoreOnly | Components, args: argparse.Namespace) -> int:
    state = RequestState(args.state) if args.state else None
    records = await c.store.list_requests(state, limit=args.limit)
    rows = [
        (
            r.id,
            r.state.value,
            r.pending_reason.value if r.pending_reason else "",
            r.template,
            r.requester.principal,
            r.protocol,
            ts(r.created_at),
        )
        for r in records
    ]
    emit(args, [request_dict(r) for r in records], table(rows, REQUEST_HEADERS))
    return EXIT_OK


async def _get_request(c: Components, request_id: str) -> RequestRecord:
    record = await c.store.get_request(request_id)
    if record is None:
        raise NotFound(f"no request {request_id}")
    return record


async def cmd_requests_show(c: Components, args: argparse.Namespace) -> int:
    record = await _get_request(c, args.id)
    data = request_dict(record)
    human = fields(data)
    if record.state is RequestState.ISSUED and record.certificate_serial:
        outcome = await c.service.outcome_of(record)
        if isinstance(outcome, Issued):
            data["chain"] = pem_chain(outcome.full_chain).decode()
            human = fields({k: v for k, v in data.items() if k != "chain"})
            human += "\n" + data["chain"].rstrip()
    emit(args, data, human)
    return EXIT_OK


async def cmd_requests_approve(c: Components, args: argparse.Namespace) -> int:
    outcome = await c.service.approve(args.id, actor())
    return print_outcome(args, outcome, args.id)


async def cmd_requests_deny(c: Components, args: argparse.Namespace) -> int:
    outcome = await c.service.deny(args.id, actor(), args.reason or "")
    print_outcome(args, outcome, args.id)
    return EXIT_OK
