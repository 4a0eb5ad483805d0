"""``certgate templates list|show|import``: the certificate templates policy enforces.
Actions in :mod:`gateway.cli.actions.templates`."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.cli.common import Opens, SubParsers, action, command_group, subcommand

_ACTIONS = "gateway.cli.actions.templates"


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate templates ...``."""
    tpl = command_group(sub, common, "templates", "certificate templates")
    lst = subcommand(tpl, common, "list", "the configured templates")
    action(lst, f"{_ACTIONS}:cmd_templates_list", Opens.TEMPLATES)
    show = subcommand(tpl, common, "show", "every setting of one template")
    show.add_argument("name", help="template name")
    action(show, f"{_ACTIONS}:cmd_templates_show", Opens.TEMPLATES)
    imp = subcommand(tpl, common, "import", "import AD CS templates over MS-XCEP")
    imp.add_argument("--xcep", required=True, metavar="URL", help="CEP GetPolicies endpoint")
    imp.add_argument(
        "--connector", required=True, help="ms_ces connector: its credentials, and the route"
    )
    imp.add_argument("--out", type=Path, help="directory (default: [policy] templates_dir)")
    imp.add_argument("--force", action="store_true", help="overwrite existing files")
    action(imp, f"{_ACTIONS}:cmd_templates_import")
