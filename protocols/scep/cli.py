"""``certgate scep ...``: operator commands of the SCEP front-end (the command tree only; the
actions are in :mod:`protocols.scep.cli_actions`, imported when a command runs).

``certgate scep otp create --endpoint E [--identity ID] [--ttl 1h]`` prints a one-time challenge
password once (NDES's mscep_admin page); only its SHA-256 is stored.

``certgate scep ra show`` prints every RA certificate the endpoints publish, with its role,
SHA-256 fingerprint, key usage and PEM, for pinning in MDM profiles and client configurations.
"""

from __future__ import annotations

import argparse

from gateway.cli.common import Opens, SubParsers, action, subcommand

_ACTIONS = "protocols.scep.cli_actions"


def register(subparsers: SubParsers, common: argparse.ArgumentParser) -> None:
    """Add ``scep`` to the ``certgate`` command line."""
    scep = subcommand(subparsers, common, "scep", "SCEP one-time challenges and RA certificates")
    scep_sub = scep.add_subparsers(dest="scep_command", required=True, metavar="GROUP")
    otp_parser = subcommand(scep_sub, common, "otp", "one-time challenge passwords")
    otp_sub = otp_parser.add_subparsers(dest="otp_command", required=True, metavar="ACTION")
    create = subcommand(otp_sub, common, "create", "create a one-time challenge; printed once")
    create.add_argument("--endpoint", required=True, help="SCEP endpoint name (challenge = otp)")
    create.add_argument("--identity", help="principal the enrolled certificate is recorded for")
    create.add_argument("--ttl", default="1h", help="lifetime, e.g. 30m, 1h, 7d (default 1h)")
    action(create, f"{_ACTIONS}:cmd_otp_create")
    ra_parser = subcommand(scep_sub, common, "ra", "registration authority certificates")
    ra_sub = ra_parser.add_subparsers(dest="ra_command", required=True, metavar="ACTION")
    show = subcommand(
        ra_sub, common, "show", "RA certificates: role, SHA-256 fingerprint, key usage"
    )
    action(show, f"{_ACTIONS}:cmd_ra_show", Opens.TEMPLATES)
