"""``certgate requests list|show|approve|deny``: the enrollment requests and the approval
queue (AD CS "pending requests", certificate manager approval). Actions in
:mod:`gateway.cli.actions.requests`."""

from __future__ import annotations

import argparse

from gateway.cli.common import Opens, SubParsers, action, command_group, subcommand

#: gateway.model.RequestState values (tests/unit/test_cli_tree.py keeps them equal).
REQUEST_STATES = ("received", "pending", "issued", "denied", "failed")

_ACTIONS = "gateway.cli.actions.requests"


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate requests ...``."""
    req = command_group(sub, common, "requests", "enrollment requests and the approval queue")
    lst = subcommand(req, common, "list", "list requests, newest first")
    lst.add_argument("--state", choices=REQUEST_STATES, help="only requests in this state")
    lst.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    action(lst, f"{_ACTIONS}:cmd_requests_list", Opens.STORE)
    show = subcommand(req, common, "show", "one request, with its chain once issued")
    show.add_argument("id", help="request id")
    action(show, f"{_ACTIONS}:cmd_requests_show")
    approve = subcommand(req, common, "approve", "approve a request waiting for approval")
    approve.add_argument("id", help="request id")
    approve.add_argument("--out", "-o", help="write the issued PEM chain here")
    action(approve, f"{_ACTIONS}:cmd_requests_approve")
    deny = subcommand(req, common, "deny", "deny a request waiting for approval")
    deny.add_argument("id", help="request id")
    deny.add_argument("--reason", default="", help="why (recorded and shown to the requester)")
    action(deny, f"{_ACTIONS}:cmd_requests_deny")
