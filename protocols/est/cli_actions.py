"""What ``certgate est ...`` does (the command tree is :mod:`protocols.est.cli`)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.common import emit, table, ts
from gateway.clock import SystemClock
from gateway.durations import duration_option
from gateway.errors import BadRequest, CertgateError, NotFound
from protocols.est.settings import parse_settings
from protocols.est.state import EstState

if TYPE_CHECKING:  # the server's components: only the gateway-level commands get them
    from gateway.server.wiring import Components


def _state(c: Any) -> EstState:
    """EST state on the store of ``c`` (a STORE command's :class:`StoreOnly`)."""
    return EstState(c.store, SystemClock().now)


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


async def cmd_user_add(c: Any, args: argparse.Namespace) -> int:
    password = _password(args)
    if not password:
        raise BadRequest("an empty password is not allowed")
    await _state(c).add_user(args.username, password, args.group, args.replace)
    emit(args, {"username": args.username, "groups": args.group}, f"EST user {args.username} saved")
    return 0


async def cmd_user_list(c: Any, args: argparse.Namespace) -> int:
    users = await _state(c).list_users()
    data = [{"username": u.username, "groups": list(u.groups)} for u in users]
    emit(args, data, table([(u.username, ",".join(u.groups)) for u in users], ["USER", "GROUPS"]))
    return 0


async def cmd_user_delete(c: Any, args: argparse.Namespace) -> int:
    if not await _state(c).delete_user(args.username):
        raise NotFound(f"no EST user {args.username!r}")
    emit(args, {"deleted": args.username}, f"EST user {args.username} deleted")
    return 0


async def cmd_code_create(c: Components, args: argparse.Namespace) -> int:
    config = c.config
    settings = parse_settings(
        config.protocols.get("est", {}), config.file, config.default_template, c.policy.templates
    )
    label = args.label or ""
    if settings.label(label) is None:
        raise NotFound(f"no EST label {label!r} in {config.file} [est.labels]")
    ttl = duration_option(args.ttl, "--ttl")
    code, record = await _state(c).create_code(label, args.identity, ttl)
    data = {
        "code": code,
        "label": label,
        "identity": args.identity,
        "expires_at": record.expires_at,
    }
    human = (
        f"{code}\n(one-time enrollment code for {args.identity!r} on label "
        f"{label or '(default)'}, expires {ts(record.expires_at)} UTC; it is not shown again)"
    )
    emit(args, data, human)
    return 0
