"""``certgate templates import --xcep URL --connector NAME``: the ms_ces connector's command,
added to the built-in ``templates`` group through the ``certgate.cli`` entry point ``ms_ces``
like the front-ends' command groups. The command tree only (standard library, so ``certgate
--help`` stays light); the action is :func:`backends.ms_ces.cli_actions.cmd_templates_import`,
imported when the command runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.cli.common import SubParsers, action, group_actions, subcommand

_ACTIONS = "backends.ms_ces.cli_actions"


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """Add ``import`` to the ``templates`` group (entry point group ``certgate.cli``)."""
    templates = group_actions(sub, "templates")
    imp = subcommand(templates, common, "import", "import AD CS templates over MS-XCEP")
    imp.add_argument("--xcep", required=True, metavar="URL", help="CEP GetPolicies endpoint")
    imp.add_argument(
        "--connector", required=True, help="ms_ces connector: its credentials, and the route"
    )
    imp.add_argument("--out", type=Path, help="directory (default: [policy] templates_dir)")
    imp.add_argument("--force", action="store_true", help="overwrite existing files")
    action(imp, f"{_ACTIONS}:cmd_templates_import")
