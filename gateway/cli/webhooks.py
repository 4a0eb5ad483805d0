"""``certgate webhooks list|pending``: the configured receivers and the outbox (issue #16).
Actions in :mod:`gateway.cli.actions.webhooks`."""

from __future__ import annotations

import argparse

from gateway.cli.common import Opens, SubParsers, action, command_group, subcommand

_ACTIONS = "gateway.cli.actions.webhooks"


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate webhooks ...``."""
    group = command_group(sub, common, "webhooks", "event notifications and their outbox")
    lst = subcommand(group, common, "list", "the receivers, their events and counts")
    action(lst, f"{_ACTIONS}:cmd_list", Opens.STORE)
    pending = subcommand(group, common, "pending", "events not delivered yet, the next due first")
    pending.add_argument("--webhook", metavar="NAME", help="only this receiver's")
    pending.add_argument("--limit", type=int, default=100, help="at most this many [100]")
    action(pending, f"{_ACTIONS}:cmd_pending", Opens.STORE)
