"""Operator commands for EST: ``certgate est user add|list|delete`` (HTTP Basic accounts) and
``certgate est code create`` (one-time enrollment codes, printed once, stored only as a hash).

Passwords are read from ``--password-file``, ``--password-env`` or, interactively, a prompt;
never from the command line, where they would land in the shell history and ``ps``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from gateway.config import parse_seconds
from gateway.errors import BadRequest, CertgateError, NotFound
from gateway.server.wiring import Components
from protocols.est.settings import parse_settings
from protocols.est.state import EstState, StateStore


def _state(c: Components) -> EstState:
    return EstState(cast(StateStore, c.store), c.service.clock.now)


def _print(args: argparse.Namespace, data: dict[str, Any] | list[Any], human: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else human)


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            return Path(args.password_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise CertgateError(f"cannot read {args.password_file}: {exc.strerror}") from None
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise CertgateError(f"environment variable {args.password_env} is not set")
        return value
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise CertgateError("the passwords differ")
    return first


async def cmd_user_add(c: Components, args: argparse.Namespace) -> int:
    password = _password(args)
    if not password:
        raise BadRequest("an empty password is not allowed")
    await _state(c).add_user(args.username, password, args.group, args.replace)
    _print(
        args, {"username": args.username, "groups": args.group}, f"EST user {args.username} saved"
    )
    return 0


async def cmd_user_list(c: Components, args: argparse.Namespace) -> int:
    users = await _state(c).list_users()
    data = [{"username": u.username, "groups": list(u.groups)} for u in users]
    _print(args, data, "\n".join(f"{u.username}  {','.join(u.groups)}" for u in users))
    return 0


async def cmd_user_delete(c: Components, args: argparse.Namespace) -> int:
    if not await _state(c).delete_user(args.username):
        raise NotFound(f"no EST user {args.username!r}")
    _print(args, {"deleted": args.username}, f"EST user {args.username} deleted")
    return 0


async def cmd_code_create(c: Components, args: argparse.Namespace) -> int:
    config = c.config
    settings = parse_settings(
        config.protocols.get("est", {}), config.file, config.default_template, c.policy.templates
    )
    label = args.label or ""
    if settings.label(label) is None:
        raise NotFound(f"no EST label {label!r} in {config.file} [est.labels]")
    ttl = parse_seconds(args.ttl, "--ttl", "ttl")
    if ttl <= 0:
        raise BadRequest("--ttl must be positive")
    code, record = await _state(c).create_code(label, args.identity, timedelta(seconds=ttl))
    data = {
        "code": code,
        "label": label,
        "identity": args.identity,
        "expires_at": record.expires_at.isoformat(),
    }
    human = (
        f"{code}\n(one-time enrollment code for {args.identity!r} on label "
        f"{label or '(default)'}, expires {record.expires_at.isoformat()}; it is not shown again)"
    )
    _print(args, data, human)
    return 0


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    est = sub.add_parser("est", parents=[common], help="EST users and enrollment codes")
    groups = est.add_subparsers(dest="est_command", required=True)

    user = groups.add_parser("user", parents=[common], help="HTTP Basic accounts")
    user_cmds = user.add_subparsers(dest="action", required=True)
    add = user_cmds.add_parser("add", parents=[common])
    add.add_argument("username")
    add.add_argument("--group", action="append", default=[], help="group (repeatable)")
    add.add_argument("--password-file", help="read the password from this file")
    add.add_argument("--password-env", help="read the password from this variable")
    add.add_argument("--replace", action="store_true", help="overwrite an existing user")
    add.set_defaults(func=cmd_user_add)
    user_cmds.add_parser("list", parents=[common]).set_defaults(func=cmd_user_list)
    delete = user_cmds.add_parser("delete", parents=[common])
    delete.add_argument("username")
    delete.set_defaults(func=cmd_user_delete)

    code = groups.add_parser("code", parents=[common], help="one-time enrollment codes")
    code_cmds = code.add_subparsers(dest="action", required=True)
    create = code_cmds.add_parser("create", parents=[common])
    create.add_argument("--label", default="", help="EST label (default: the unlabelled path)")
    create.add_argument("--identity", required=True, help="principal the code enrolls as")
    create.add_argument("--ttl", default="24h", help="lifetime, e.g. 30m, 24h, 7d (default 24h)")
    create.set_defaults(func=cmd_code_create)
