"""``certgate admin token create|list|revoke``: the admin API's bearer tokens (issue #16).
Actions in :mod:`gateway.cli.actions.admin`."""

from __future__ import annotations

import argparse

from gateway.cli.common import Opens, SubParsers, action, command_group, subcommand

#: gateway.admin.plugin.Role names, lower case (tests/unit/test_admin_tokens.py keeps them equal).
ROLES = ("viewer", "approver", "admin")

_ACTIONS = "gateway.cli.actions.admin"


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate admin ...``."""
    admin = command_group(sub, common, "admin", "the admin API (/api/v1) and its tokens")
    token = subcommand(admin, common, "token", "API tokens (Authorization: Bearer)")
    tokens = token.add_subparsers(dest="token_action", required=True, metavar="ACTION")
    create = subcommand(tokens, common, "create", "make a token and print it (shown only once)")
    create.add_argument("--name", required=True, help="the token's name (audit: token:NAME)")
    create.add_argument("--role", required=True, choices=ROLES, help="what the token may do")
    create.add_argument(
        "--expires", metavar="DURATION", help="expire after this long (e.g. 30d); default never"
    )
    action(create, f"{_ACTIONS}:cmd_token_create", Opens.STORE)
    lst = subcommand(tokens, common, "list", "every token (never its secret)")
    action(lst, f"{_ACTIONS}:cmd_token_list", Opens.STORE)
    revoke = subcommand(tokens, common, "revoke", "revoke a token at once")
    revoke.add_argument("name", help="the token's name")
    action(revoke, f"{_ACTIONS}:cmd_token_revoke", Opens.STORE)
