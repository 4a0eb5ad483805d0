"""Operator commands for EST: ``certgate est user add|list|delete`` (HTTP Basic accounts) and
``certgate est code create`` (one-time enrollment codes, printed once, stored only as a hash).

The command tree only (entry point group ``certgate.cli``): it imports nothing but the CLI's
scaffolding, so ``certgate --help`` costs no EST import; the actions are in
:mod:`protocols.est.cli_actions`. Passwords are read from ``--password-file``,
``--password-env`` or, interactively, a prompt; never from the command line, where they would
land in the shell history and ``ps``.
"""

from __future__ import annotations

import argparse

from gateway.cli.common import Opens, SubParsers, action, subcommand

_ACTIONS = "protocols.est.cli_actions"


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """Add the ``est`` command group."""
    est = subcommand(sub, common, "est", "EST users and enrollment codes")
    groups = est.add_subparsers(dest="est_command", required=True, metavar="GROUP")

    user = subcommand(groups, common, "user", "HTTP Basic accounts")
    user_cmds = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = subcommand(user_cmds, common, "add", "create (or --replace) an account")
    add.add_argument("username", help="the HTTP Basic user name")
    add.add_argument("--group", action="append", default=[], help="group (repeatable)")
    add.add_argument("--password-file", help="read the password from this file")
    add.add_argument("--password-env", help="read the password from this variable")
    add.add_argument("--replace", action="store_true", help="overwrite an existing user")
    action(add, f"{_ACTIONS}:cmd_user_add", Opens.STORE)
    listing = subcommand(user_cmds, common, "list", "the accounts and their groups")
    action(listing, f"{_ACTIONS}:cmd_user_list", Opens.STORE)
    delete = subcommand(user_cmds, common, "delete", "delete an account")
    delete.add_argument("username", help="the HTTP Basic user name")
    action(delete, f"{_ACTIONS}:cmd_user_delete", Opens.STORE)

    code = subcommand(groups, common, "code", "one-time enrollment codes")
    code_cmds = code.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = subcommand(code_cmds, common, "create", "create a code; it is printed once")
    create.add_argument("--label", default="", help="EST label (default: the unlabelled path)")
    create.add_argument("--identity", required=True, help="principal the code enrolls as")
    create.add_argument("--ttl", default="24h", help="lifetime, e.g. 30m, 24h, 7d (default 24h)")
    action(create, f"{_ACTIONS}:cmd_code_create")
