"""``certgate audit list|show``: the audit trail (every request, issuance, refusal, approval,
revocation and operator action), read from the store without opening the CA. Actions in
:mod:`gateway.cli.actions.audit`."""

from __future__ import annotations

import argparse

from gateway.cli.common import Opens, SubParsers, action, command_group, subcommand

_ACTIONS = "gateway.cli.actions.audit"


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate audit ...``."""
    audit = command_group(sub, common, "audit", "the audit trail")
    lst = subcommand(audit, common, "list", "audit events, oldest first (the newest --limit)")
    lst.add_argument(
        "--since",
        metavar="DURATION|TIMESTAMP",
        help="only events this recent (e.g. 12h, 7d) or at/after this ISO 8601 time (UTC "
        "unless it names its offset)",
    )
    lst.add_argument(
        "--type",
        action="append",
        default=[],
        metavar="EVENT",
        help="only this event or dotted prefix (request, certificate.issued, scep); repeatable",
    )
    lst.add_argument("--serial", help="only events about this certificate serial (hex)")
    lst.add_argument("--request", metavar="ID", help="only events about this request id")
    lst.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    action(lst, f"{_ACTIONS}:cmd_audit_list", Opens.STORE)
    show = subcommand(audit, common, "show", "one audit event, every field")
    show.add_argument("id", type=int, help="event id (the ID column of audit list)")
    action(show, f"{_ACTIONS}:cmd_audit_show", Opens.STORE)
