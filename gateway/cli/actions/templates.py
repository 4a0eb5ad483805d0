"""``certgate templates list|show``: the certificate templates policy enforces (``templates
import`` is the ms_ces connector's: :mod:`backends.ms_ces.cli_actions`)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from gateway.admin.plain import plain
from gateway.cli.common import EXIT_OK, duration, emit, fields, table
from gateway.cli.opening import TemplatesOnly

if TYPE_CHECKING:  # the server's components: only the gateway-level commands get them
    from gateway.server.wiring import Components


async def cmd_templates_list(c: TemplatesOnly | Components, args: argparse.Namespace) -> int:
    templates = sorted(c.policy.templates.values(), key=lambda t: t.name)
    rows = [
        (
            t.name,
            f"{t.major_version}.{t.minor_version}",
            duration(t.validity),
            duration(t.renewal_period),
            "yes" if t.issuance.manager_approval else "no",
            t.connector,
        )
        for t in templates
    ]
    data = [
        {
            "name": t.name,
            "oid": t.oid,
            "major_version": t.major_version,
            "minor_version": t.minor_version,
            "validity": duration(t.validity),
            "renewal_period": duration(t.renewal_period),
            "manager_approval": t.issuance.manager_approval,
            "connector": t.connector,
        }
        for t in templates
    ]
    emit(
        args,
        data,
        table(rows, ["NAME", "VERSION", "VALIDITY", "RENEWAL", "APPROVAL", "CONNECTOR"]),
    )
    return EXIT_OK


async def cmd_templates_show(c: TemplatesOnly | Components, args: argparse.Namespace) -> int:
    data = plain(c.policy.template(args.name))  # as the admin API shows it
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(fields(data))
    return EXIT_OK
