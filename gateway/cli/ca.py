"""``certgate ca show|crl|export``: the CA chain and its CRL. Actions in
:mod:`gateway.cli.actions.ca`."""

from __future__ import annotations

import argparse

from gateway.cli.common import SubParsers, action, command_group, subcommand

_ACTIONS = "gateway.cli.actions.ca"


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate ca ...``."""
    ca = command_group(sub, common, "ca", "the CA: chain, CRL")
    show = subcommand(ca, common, "show", "the CA chain: subjects, validity, SHA-256")
    action(show, f"{_ACTIONS}:cmd_ca_show")
    crl = subcommand(ca, common, "crl", "a fresh CRL (PEM, or DER with --der)")
    crl.add_argument("--out", "-o", help="write it here instead of stdout")
    crl.add_argument("--der", action="store_true", help="DER instead of PEM")
    action(crl, f"{_ACTIONS}:cmd_ca_crl")
    exp = subcommand(ca, common, "export", "the CA chain as PEM (issuing CA first)")
    exp.add_argument("--out", "-o", help="write it here instead of stdout")
    action(exp, f"{_ACTIONS}:cmd_ca_export")
