"""``certgate scep ...``: operator commands of the SCEP front-end.

``certgate scep otp create --endpoint E [--identity ID] [--ttl 1h]`` prints a one-time challenge
password once (NDES's mscep_admin page); only its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import getpass
import json
from datetime import timedelta
from typing import Any

from gateway.config import parse_seconds
from gateway.errors import BadRequest, ConfigError
from gateway.server.wiring import Components
from gateway.store import SQLStore
from protocols.scep import otp
from protocols.scep.config import parse_settings


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``scep`` to the ``certgate`` command line."""
    scep = subparsers.add_parser("scep", parents=[common], help="SCEP front-end")
    scep_sub = scep.add_subparsers(dest="scep_command", required=True)
    otp_parser = scep_sub.add_parser("otp", parents=[common], help="one-time challenges")
    otp_sub = otp_parser.add_subparsers(dest="otp_command", required=True)
    create = otp_sub.add_parser("create", parents=[common], help="create a one-time challenge")
    create.add_argument("--endpoint", required=True, help="SCEP endpoint name (challenge = otp)")
    create.add_argument("--identity", help="principal the enrolled certificate is recorded for")
    create.add_argument("--ttl", default="1h", help="lifetime, e.g. 30m, 1h, 7d (default 1h)")
    create.set_defaults(func=cmd_otp_create)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


async def cmd_otp_create(c: Components, args: argparse.Namespace) -> int:
    raw = c.config.protocols.get("scep")
    if raw is None:
        raise ConfigError(c.config.file, "scep", "no [scep] table in the configuration")
    settings = parse_settings(raw, c.config.file, c.policy.templates, c.config.default_template)
    endpoint = settings.endpoints.get(args.endpoint)
    if endpoint is None:
        raise BadRequest(
            f"no SCEP endpoint {args.endpoint!r} (known: {sorted(settings.endpoints)})"
        )
    if endpoint.challenge != "otp":
        raise BadRequest(
            f"endpoint {args.endpoint!r} uses challenge {endpoint.challenge!r}, not otp"
        )
    ttl = parse_seconds(args.ttl, "--ttl", "ttl")
    if ttl <= 0:
        raise BadRequest("--ttl must be positive")
    assert isinstance(c.store, SQLStore)
    created = await otp.create(
        c.store,
        endpoint.name,
        args.identity,
        timedelta(seconds=ttl),
        _actor(),
        c.service.clock.now(),
    )
    if args.json:
        print(
            json.dumps(
                {
                    "password": created.password,
                    "endpoint": created.endpoint,
                    "identity": created.identity,
                    "expires_at": created.expires_at.isoformat(),
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        print(created.password)
        print(
            f"(endpoint {created.endpoint}, single use, expires {created.expires_at.isoformat()})"
        )
    return 0
