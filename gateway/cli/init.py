"""``certgate init [DIR]``: create the data directory, database and CA, and say what was made.

The one command besides ``serve`` that may create a gateway; every other command refuses to
act on a data directory that holds none (:mod:`gateway.cli.datadir`). Without ``DIR`` it opens
the gateway of the configuration in use (``--config``, ``$CERTGATE_CONFIG``,
``./conf/certgate.toml``); opening an existing gateway is harmless, so that twice is fine.

With ``DIR`` it first writes a complete site there (:mod:`gateway.cli.site`): certgate.toml
with every protocol on, the certificate templates, generated secrets in ``DIR/secrets/``
(0600), then creates the site's gateway and its bootstrap accounts. A directory that holds a
site already is refused in one line: init never overwrites a configuration or a secret.

Light at import (``certgate --help`` imports this module): the work is imported when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.cli.common import EXIT_OK, SubParsers, emit

#: The site options' defaults (``certgate init DIR``).
SITE_DEFAULTS = {"host": "127.0.0.1", "port": 8443, "plain_port": 8080, "est_port": 9443}


def write_site_first(args: argparse.Namespace) -> None:
    """Before the configuration is read: write the site ``DIR`` names and make it the
    configuration (``main`` calls this as ``args.before_config``)."""
    if args.site is None:
        given = [
            option
            for option, value, default in (
                ("--host", args.host, SITE_DEFAULTS["host"]),
                ("--port", args.port, SITE_DEFAULTS["port"]),
                ("--plain-port", args.plain_port, SITE_DEFAULTS["plain_port"]),
                ("--est-port", args.est_port, SITE_DEFAULTS["est_port"]),
                ("--name", args.names, None),
                ("--external-url", args.external_url, None),
                ("--plain-url", args.plain_url, None),
                ("--database-url", args.database_url, None),
            )
            if value != default
        ]
        if given:
            from gateway.cli.datadir import DataDirError

            raise DataDirError(f"certgate init: {', '.join(given)} only apply with a site DIR")
        return
    from gateway.cli.site import write_site

    if args.config is not None:
        from gateway.cli.datadir import DataDirError

        raise DataDirError(
            f"certgate init {args.site}: --config names another configuration; the site's is "
            f"{args.site / 'certgate.toml'} (drop --config)"
        )
    args.config = write_site(args.site, args)
    args.data = None  # written into the site's [data] dir


async def cmd_init(c: Any, args: argparse.Namespace) -> int:
    from gateway.cli.site import finish_site
    from gateway.pkix import fingerprint
    from gateway.server.banner import write_root

    chain = await c.service.ca_chain()
    root = fingerprint(chain[-1]) if chain else None
    root_file = write_root(c.config.data_dir, chain)
    data: dict[str, Any] = {
        "data_dir": str(c.config.data_dir),
        "root_ca_sha256": root,
        "root_ca_file": str(root_file) if chain else None,
    }
    lines = [
        f"data directory  {c.config.data_dir}",
        f"root CA SHA-256 {root or '(no CA chain)'}",
    ]
    if chain:
        lines.append(f"root CA file    {root_file}")
    if args.site is not None:
        site = await finish_site(c, args)
        data["site"] = site
        lines += [
            f"site            {site['config']}",
            f"secrets         {site['secrets']} (0600 files)",
            f"serve it with   certgate serve -c {site['config']}",
        ]
    emit(args, data, "\n".join(lines))
    return EXIT_OK


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate init [DIR]``."""
    init = sub.add_parser(
        "init",
        parents=[common],
        help="create the data directory, database and CA (with DIR: a complete site first)",
        description="Create the data directory, database and CA. With DIR, first write a "
        "complete site there: certgate.toml with ACME, EST, SCEP and CEP/CES on (on loopback "
        "unless --host says otherwise), the templates and generated secrets.",
    )
    init.add_argument("site", metavar="DIR", nargs="?", type=Path, help="write a site here")
    site = init.add_argument_group("site options (with DIR)")
    d = SITE_DEFAULTS
    site.add_argument("--host", default=d["host"], help="listen address [127.0.0.1]")
    site.add_argument("--port", type=int, default=d["port"], help="HTTPS main listener [8443]")
    site.add_argument(
        "--plain-port", type=int, default=d["plain_port"], help="plain HTTP: SCEP, /ca/ [8080]"
    )
    site.add_argument("--est-port", type=int, default=d["est_port"], help="EST HTTPS [9443]")
    site.add_argument(
        "--name",
        action="append",
        dest="names",
        help="DNS name or IP address the TLS certificates are for (repeatable) "
        "[localhost, 127.0.0.1]",
    )
    site.add_argument("--external-url", help="https URL clients use [https://NAME:PORT]")
    site.add_argument("--plain-url", help="http URL devices use [http://NAME:PLAIN-PORT]")
    site.add_argument(
        "--database-url",
        metavar="REF",
        help='[store] url, written before the database is made: "env:NAME" or "file:PATH" '
        "naming a postgresql+asyncpg:// URL (several instances share it) [SQLite in DIR/data]",
    )
    init.set_defaults(func=cmd_init, creates=True, before_config=write_site_first)
