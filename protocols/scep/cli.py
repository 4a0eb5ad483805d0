"""``certgate scep ...``: operator commands of the SCEP front-end.

``certgate scep otp create --endpoint E [--identity ID] [--ttl 1h]`` prints a one-time challenge
password once (NDES's mscep_admin page); only its SHA-256 is stored.

``certgate scep ra show`` prints every RA certificate the endpoints publish, with its role,
SHA-256 fingerprint, key usage and PEM, for pinning in MDM profiles and client configurations.
"""

from __future__ import annotations

import argparse
import getpass
import json
from datetime import timedelta
from typing import Any

from cryptography import x509

from gateway.config import parse_seconds
from gateway.errors import BadRequest, ConfigError, NotFound
from gateway.server.wiring import Components
from gateway.store import SQLStore
from protocols.scep import otp, ra_info
from protocols.scep.config import ScepSettings, parse_settings


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
    ra_parser = scep_sub.add_parser("ra", parents=[common], help="registration authority")
    ra_sub = ra_parser.add_subparsers(dest="ra_command", required=True)
    show = ra_sub.add_parser(
        "show", parents=[common], help="RA certificates: role, SHA-256 fingerprint, key usage"
    )
    show.set_defaults(func=cmd_ra_show)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _settings(c: Components) -> ScepSettings:
    raw = c.config.protocols.get("scep")
    if raw is None:
        raise ConfigError(c.config.file, "scep", "no [scep] table in the configuration")
    return parse_settings(raw, c.config.file, c.policy.templates, c.config.default_template)


async def cmd_ra_show(c: Components, args: argparse.Namespace) -> int:
    """Every RA certificate in use (RFC 8894 §2.2: verified out of band by its fingerprint)."""
    described = []
    for ra in ra_info.published(_settings(c), c.config.data_dir):
        try:
            cert = x509.load_pem_x509_certificate(ra.path.read_bytes())
        except FileNotFoundError:
            raise NotFound(
                f"no SCEP RA certificate at {ra.path} yet: `certgate serve` issues it on its "
                "first start"
            ) from None
        except (OSError, ValueError) as exc:
            raise BadRequest(f"cannot read the SCEP RA certificate {ra.path}: {exc}") from None
        described.append(ra_info.describe(ra, cert))
    if args.json:
        print(json.dumps(described, indent=2))
    else:
        print(ra_info.render(described), end="")
    return 0


async def cmd_otp_create(c: Components, args: argparse.Namespace) -> int:
    settings = _settings(c)
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
