"""``certgate certs list|show|revoke|due``: the certificate inventory. Actions in
:mod:`gateway.cli.actions.certs`."""

from __future__ import annotations

import argparse

from gateway.cli.common import Opens, SubParsers, action, command_group, subcommand

#: gateway.model.CertificateStatus values and RevocationReason names as typed on the command
#: line (tests/unit/test_cli_tree.py keeps them equal to the enums).
CERTIFICATE_STATUSES = ("valid", "revoked")
REVOCATION_REASONS = (
    "unspecified",
    "key-compromise",
    "ca-compromise",
    "affiliation-changed",
    "superseded",
    "cessation-of-operation",
    "certificate-hold",
    "remove-from-crl",
    "privilege-withdrawn",
    "aa-compromise",
)

_ACTIONS = "gateway.cli.actions.certs"


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate certs ...``."""
    certs = command_group(sub, common, "certs", "certificate inventory")
    lst = subcommand(certs, common, "list", "list certificates, newest first")
    lst.add_argument("--status", choices=CERTIFICATE_STATUSES, help="only this status")
    lst.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    action(lst, f"{_ACTIONS}:cmd_certs_list", Opens.STORE)
    show = subcommand(certs, common, "show", "one certificate, with its PEM")
    show.add_argument("serial", help="serial number in hex (colons and leading zeros allowed)")
    action(show, f"{_ACTIONS}:cmd_certs_show", Opens.STORE)
    revoke = subcommand(certs, common, "revoke", "revoke a certificate")
    revoke.add_argument("serial", help="serial number in hex")
    revoke.add_argument(
        "--reason",
        default="unspecified",
        choices=REVOCATION_REASONS,
        help="RFC 5280 CRL reason (default unspecified)",
    )
    action(revoke, f"{_ACTIONS}:cmd_certs_revoke")
    due = subcommand(certs, common, "due", "certificates in their renewal window")
    action(due, f"{_ACTIONS}:cmd_certs_due")
