"""``certgate wstep user add|list|remove``: password accounts for the CES UsernamePassword
endpoint. The command tree only; the actions are in :mod:`protocols.wstep.cli_actions`,
imported when a command runs. The password comes from ``--password-env VAR``,
``--password-file PATH`` or a prompt, never from the command line (it would show in ``ps``
and shell history)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.cli.common import Opens, SubParsers, action, subcommand

_ACTIONS = "protocols.wstep.cli_actions"


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """Add the ``wstep`` command group (entry point group ``certgate.cli``)."""
    group = subcommand(sub, common, "wstep", "MS-WSTEP/CES password accounts")
    actions = group.add_subparsers(dest="action", required=True, metavar="GROUP")
    user = subcommand(actions, common, "user", "password accounts")
    user_actions = user.add_subparsers(dest="user_action", required=True, metavar="ACTION")

    add = subcommand(user_actions, common, "add", "create an account")
    add.add_argument("username", help="the UsernameToken user name")
    add.add_argument("--principal", help="principal for template permissions (default: username)")
    add.add_argument("--group", action="append", default=[], help="group (repeatable)")
    source = add.add_mutually_exclusive_group()
    source.add_argument("--password-env", metavar="VAR", help="read the password from $VAR")
    source.add_argument("--password-file", type=Path, help="read the password from a file")
    action(add, f"{_ACTIONS}:cmd_user_add", Opens.STORE)

    listing = subcommand(user_actions, common, "list", "the accounts")
    action(listing, f"{_ACTIONS}:cmd_user_list", Opens.STORE)
    remove = subcommand(user_actions, common, "remove", "delete an account")
    remove.add_argument("username", help="the UsernameToken user name")
    action(remove, f"{_ACTIONS}:cmd_user_remove", Opens.STORE)
