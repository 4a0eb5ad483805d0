"""``certgate acme eab create|list|delete`` (external account binding keys, RFC 8555 §7.3.4)
and ``certgate acme account list|revoke``. The command tree only; the actions are in
:mod:`protocols.acme.cli_actions`, imported when a command runs."""

from __future__ import annotations

import argparse

from gateway.cli.common import Opens, SubParsers, action, subcommand

_ACTIONS = "protocols.acme.cli_actions"


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """Add the ``acme`` command group."""
    acme = subcommand(sub, common, "acme", "ACME external account binding keys and accounts")
    acme_sub = acme.add_subparsers(dest="acme_command", required=True, metavar="GROUP")
    eab = subcommand(acme_sub, common, "eab", "external account binding keys")
    eab_sub = eab.add_subparsers(dest="eab_command", required=True, metavar="ACTION")
    create = subcommand(eab_sub, common, "create", "create a key; prints it once")
    create.add_argument("--principal", required=True, help="requester principal for templates")
    create.add_argument("--templates", nargs="*", default=[], help="profiles it may use (all)")
    create.add_argument(
        "--domains", nargs="*", default=[], help="pre-authorized name patterns (fnmatch)"
    )
    action(create, f"{_ACTIONS}:cmd_eab_create")
    listing = subcommand(eab_sub, common, "list", "the keys (never their secrets)")
    action(listing, f"{_ACTIONS}:cmd_eab_list", Opens.STORE)
    delete = subcommand(eab_sub, common, "delete", "delete a key")
    delete.add_argument("kid", help="key identifier")
    action(delete, f"{_ACTIONS}:cmd_eab_delete", Opens.STORE)
    account = subcommand(acme_sub, common, "account", "ACME accounts")
    account_sub = account.add_subparsers(dest="account_command", required=True, metavar="ACTION")
    accounts = subcommand(account_sub, common, "list", "the accounts")
    action(accounts, f"{_ACTIONS}:cmd_account_list", Opens.STORE)
    revoke = subcommand(account_sub, common, "revoke", "revoke an account")
    revoke.add_argument("id", help="account id")
    action(revoke, f"{_ACTIONS}:cmd_account_revoke", Opens.STORE)
