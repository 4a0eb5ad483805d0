"""What ``certgate wstep ...`` does (the command tree is :mod:`protocols.wstep.cli`)."""

from __future__ import annotations

import argparse
import getpass
import os
from datetime import UTC, datetime
from typing import Any

from gateway.cli.common import actor, emit, table
from gateway.errors import BadRequest
from protocols.wstep.users import (
    Account,
    SQLRunner,
    add_account,
    hash_password,
    list_accounts,
    remove_account,
    validate_username,
)


def _store(components: Any) -> SQLRunner:
    store: SQLRunner = components.store
    return store


def _password(args: argparse.Namespace) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise BadRequest(f"environment variable {args.password_env} is not set")
    elif args.password_file:
        try:
            value = args.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise BadRequest(f"cannot read {args.password_file}: {exc.strerror}") from None
    else:
        value = getpass.getpass("password: ")
        if getpass.getpass("again: ") != value:
            raise BadRequest("the passwords differ")
    if len(value) < 8:
        raise BadRequest("a password has at least 8 characters")
    return value


async def cmd_user_add(components: Any, args: argparse.Namespace) -> int:
    username = validate_username(args.username)
    account = Account(
        username=username,
        principal=args.principal or username,
        groups=tuple(args.group),
        password_hash=hash_password(_password(args)),
    )
    await _store(components).write(add_account, account, datetime.now(UTC))
    await components.store.audit(
        "wstep.user.added", actor(), detail={"username": username, "principal": account.principal}
    )
    emit(
        args,
        {"username": username, "principal": account.principal, "groups": list(account.groups)},
        f"added {username}",
    )
    return 0


async def cmd_user_list(components: Any, args: argparse.Namespace) -> int:
    accounts = await _store(components).read(list_accounts)
    data = [
        {"username": a.username, "principal": a.principal, "groups": list(a.groups)}
        for a in accounts
    ]
    rows = [(a.username, a.principal, ",".join(a.groups)) for a in accounts]
    emit(args, data, table(rows, ["USER", "PRINCIPAL", "GROUPS"]))
    return 0


async def cmd_user_remove(components: Any, args: argparse.Namespace) -> int:
    await _store(components).write(remove_account, args.username)
    await components.store.audit("wstep.user.removed", actor(), detail={"username": args.username})
    emit(args, {"username": args.username, "removed": True}, f"removed {args.username}")
    return 0
