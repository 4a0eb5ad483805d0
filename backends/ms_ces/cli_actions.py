"""The action of ``certgate templates import`` (:mod:`backends.ms_ces.cli`): fetch GetPolicies
from an AD CS CEP with an ms_ces connector's credentials and write one template file per
policy (:mod:`backends.ms_ces.importer` translates them)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from backends.ms_ces.connector import MSCESConnector
from backends.ms_ces.importer import import_policies
from gateway.cli.common import EXIT_OK, emit, table
from gateway.config import Config
from gateway.errors import CertgateError
from gateway.policy import load_template
from gateway.ports import CAConnector


class Opened(Protocol):
    """What the command uses of what the CLI opened for it (``Opens.GATEWAY``: the server's
    components): the configuration and the started connectors by name."""

    @property
    def config(self) -> Config: ...

    @property
    def connectors(self) -> Mapping[str, CAConnector]: ...


async def cmd_templates_import(c: Opened, args: argparse.Namespace) -> int:
    """Fetch GetPolicies from an AD CS CEP and write one template file per policy; existing
    files are kept unless ``--force``, and each file written must load as a template."""
    connector = c.connectors.get(args.connector)
    if not isinstance(connector, MSCESConnector):
        raise CertgateError(f"connector {args.connector!r} is not an ms_ces connector")
    document = await connector.fetch_policies(args.xcep)
    imported = import_policies(document, connector=args.connector, source=args.xcep)
    out: Path = args.out or c.config.templates_dir
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (a one-shot operator command)
    clashes = [t.name for t in imported if (out / f"{t.name}.toml").exists()]
    if clashes and not args.force:
        raise CertgateError(f"{out}: {', '.join(clashes)} exist (use --force to overwrite)")
    for template in imported:
        path = out / f"{template.name}.toml"
        path.write_text(template.toml, encoding="utf-8")
        load_template(path)  # what was written must load (ConfigError names the key)
    rows = [(t.name, t.adcs_name, len(t.unmapped)) for t in imported]
    data = [
        {
            "name": t.name,
            "adcs_template": t.adcs_name,
            "file": str(out / f"{t.name}.toml"),
            "unmapped": list(t.unmapped),
        }
        for t in imported
    ]
    human = table(rows, ["NAME", "AD CS TEMPLATE", "NOT MAPPED"]) + "".join(
        f"\n{t.name}: {item}" for t in imported for item in t.unmapped
    )
    emit(args, data, human)
    return EXIT_OK
