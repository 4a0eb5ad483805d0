"""``certgate templates list|show``: the certificate templates policy enforces. Actions in
:mod:`gateway.cli.actions.templates`. Connectors may add actions to the group through their
``certgate.cli`` entry point (:func:`gateway.cli.common.group_actions`): ``templates import``
(AD CS templates over MS-XCEP) is the ms_ces connector's, :mod:`backends.ms_ces.cli`."""

from __future__ import annotations

import argparse

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
