"""``certgate wstep user add|list|remove``: password accounts for the CES UsernamePassword
endpoint. The password comes from ``--password-env VAR``, ``--password-file PATH`` or a
prompt, never from the command line (it would show in ``ps`` and shell history)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.errors import BadRequest, ConfigError
from protocols.wstep.users import (
    Account,
    SQLRunner,
    add_account,
    hash_password,
    list_accounts,
    remove_account,
    validate_username,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Any) -> None:
    """Add the ``wstep`` command group (entry point group ``certgate.cli``)."""
    group = sub.add_parser("wstep", parents=[common], help="MS-WSTEP/CES front-end")
    actions = group.add_subparsers(dest="action", required=True)
    user = actions.add_parser("user", parents=[common], help="password accounts")
    user_actions = user.add_subparsers(dest="user_action", required=True)

    add = user_actions.add_parser("add", parents=[common], help="create an account")
    add.add_argument("username")
    add.add_argument("--principal", help="principal for template permissions (default: username)")
    add.add_argument("--group", action="append", default=[], help="group (repeatable)")
    source = add.add_mutually_exclusive_group()
    source.add_argument("--password-env", metavar="VAR", help="read the password from $VAR")
    source.add_argument("--password-file", type=Path, help="read the password from a file")
    add.set_defaults(func=cmd_user_add)

    user_actions.add_parser("list", parents=[common]).set_defaults(func=cmd_user_list)
    remove = user_actions.add_parser("remove", parents=[common], help="delete an account")
    remove.add_argument("username")
    remove.set_defaults(func=cmd_user_remove)


def _store(components: Any) -> SQLRunner:
    store = components.store
    if not isinstance(store, SQLRunner):  # pragma: no cover - the shipped store is SQL
        raise ConfigError(components.config.file, "store", "wstep accounts need the SQL store")
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
        "wstep.user.added", "cli", detail={"username": username, "principal": account.principal}
    )
    _print(
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
    human = "\n".join(f"{a.username}\t{a.principal}\t{','.join(a.groups)}" for a in accounts)
    _print(args, data, human or "(no accounts)")
    return 0


async def cmd_user_remove(components: Any, args: argparse.Namespace) -> int:
    await _store(components).write(remove_account, args.username)
    await components.store.audit("wstep.user.removed", "cli", detail={"username": args.username})
    _print(args, {"username": args.username, "removed": True}, f"removed {args.username}")
    return 0


def _print(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else human)
