"""``certgate requests list|show|approve|deny``: the enrollment requests and the approval
queue (AD CS "pending requests", certificate manager approval)."""

from __future__ import annotations

import argparse

from gateway.cli.common import (
    EXIT_OK,
    SubParsers,
    actor,
    command_group,
    emit,
    jsonable,
    print_outcome,
    request_dict,
    table,
    ts,
)
from gateway.errors import NotFound
from gateway.model import Issued, RequestRecord, RequestState
from gateway.pkix import pem_chain
from gateway.server.wiring import Components


async def cmd_requests_list(c: Components, args: argparse.Namespace) -> int:
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
    emit(
        args,
        [request_dict(r) for r in records],
        table(rows, ["ID", "STATE", "WAITING", "TEMPLATE", "REQUESTER", "PROTOCOL", "CREATED"]),
    )
    return EXIT_OK


async def _get_request(c: Components, request_id: str) -> RequestRecord:
    record = await c.store.get_request(request_id)
    if record is None:
        raise NotFound(f"no request {request_id}")
    return record


async def cmd_requests_show(c: Components, args: argparse.Namespace) -> int:
    record = await _get_request(c, args.id)
    data = request_dict(record)
    lines = [f"{k:18} {jsonable(v)}" for k, v in sorted(data.items()) if v is not None]
    if record.state is RequestState.ISSUED and record.certificate_serial:
        outcome = await c.service.outcome_of(record)
        if isinstance(outcome, Issued):
            data["chain"] = pem_chain(outcome.full_chain).decode()
            lines.append(data["chain"].rstrip())
    emit(args, data, "\n".join(lines))
    return EXIT_OK


async def cmd_requests_approve(c: Components, args: argparse.Namespace) -> int:
    outcome = await c.service.approve(args.id, actor())
    return print_outcome(args, outcome, args.id)


async def cmd_requests_deny(c: Components, args: argparse.Namespace) -> int:
    outcome = await c.service.deny(args.id, actor(), args.reason or "")
    print_outcome(args, outcome, args.id)
    return EXIT_OK


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate requests ...``."""
    req = command_group(sub, common, "requests", "enrollment requests")
    lst = req.add_parser("list", parents=[common])
    lst.add_argument("--state", choices=[s.value for s in RequestState])
    lst.add_argument("--limit", type=int, default=100)
    lst.set_defaults(func=cmd_requests_list)
    for name, func in (("show", cmd_requests_show), ("approve", cmd_requests_approve)):
        p = req.add_parser(name, parents=[common])
        p.add_argument("id")
        p.add_argument("--out", "-o", help=argparse.SUPPRESS)
        p.set_defaults(func=func)
    deny = req.add_parser("deny", parents=[common])
    deny.add_argument("id")
    deny.add_argument("--reason", default="")
    deny.add_argument("--out", help=argparse.SUPPRESS)
    deny.set_defaults(func=cmd_requests_deny)
