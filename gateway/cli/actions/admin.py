"""``certgate admin token create|list|revoke``: the admin API's bearer tokens."""

from __future__ import annotations

import argparse
import sys

from gateway.admin.tokens import AdminTokens, role_named
from gateway.cli.common import EXIT_OK, actor, emit, table, ts
from gateway.cli.opening import StoreOnly
from gateway.clock import SystemClock
from gateway.durations import duration_option
from gateway.errors import BadRequest

TOKEN_HEADERS = ["NAME", "ROLE", "STATE", "CREATED", "EXPIRES", "LAST USED"]


def _tokens(c: StoreOnly) -> AdminTokens:
    return AdminTokens(c.store, c.store, SystemClock())


async def cmd_token_create(c: StoreOnly, args: argparse.Namespace) -> int:
    try:
        expires = duration_option(args.expires, "--expires") if args.expires else None
    except OverflowError:
        raise BadRequest(f"--expires {args.expires}: too long") from None
    secret, record = await _tokens(c).create(args.name, role_named(args.role), actor(), expires)
    data = {**record.as_dict(record.created_at), "token": secret}
    emit(args, data, secret)  # alone on standard output, for `$(certgate admin token create ...)`
    if not args.json:
        expiry = f", expires {ts(record.expires_at)} UTC" if record.expires_at else ""
        print(
            f"token {record.name!r}, role {args.role}{expiry}: shown only now "
            "(certgate keeps only its SHA-256)",
            file=sys.stderr,
        )
    return EXIT_OK


async def cmd_token_list(c: StoreOnly, args: argparse.Namespace) -> int:
    now = SystemClock().now()
    records = await _tokens(c).list_all()
    rows = [
        (
            r.name,
            r.role.name.lower(),
            r.state(now),
            ts(r.created_at),
            ts(r.expires_at),
            ts(r.last_used_at),
        )
        for r in records
    ]
    emit(args, [r.as_dict(now) for r in records], table(rows, TOKEN_HEADERS))
    return EXIT_OK


async def cmd_token_revoke(c: StoreOnly, args: argparse.Namespace) -> int:
    record = await _tokens(c).revoke(args.name, actor())
    emit(args, record.as_dict(SystemClock().now()), f"token {record.name!r} revoked")
    return EXIT_OK
