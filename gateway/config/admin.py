"""``[admin]``: the admin REST API under ``/api/v1`` on the main listener (issue #16).

``enabled`` (default true) mounts it. Optionally, TLS client certificates stand in for tokens:
``client_ca`` names a PEM file of the CA certificates that issue them (the main listener then
asks every client for a certificate, and requires none), and ``[admin.client_roles]`` maps a
certificate's subject, as an RFC 4514 string (``"CN=ops,O=Example"``), to a role (viewer,
approver or admin). A verified certificate whose subject is listed acts with that role, named
``cert:<subject>`` in the audit trail; a token in the request wins over it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from cryptography import x509

from gateway.toml_reader import Table

__all__ = ["ADMIN_ROLES", "AdminConfig", "normal_subject", "parse_admin"]

#: Role names as configured (gateway.admin.plugin.Role, lower case).
ADMIN_ROLES = ("viewer", "approver", "admin")


@dataclass(frozen=True)
class AdminConfig:
    """``[admin]``: whether ``/api/v1`` is served, and client certificates mapped to roles
    (subject in RFC 4514 as :func:`normal_subject` writes it -> role name)."""

    enabled: bool = True
    client_ca: Path | None = None
    client_roles: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def normal_subject(text: str) -> str:
    """One spelling of a distinguished name (``ValueError`` if it is not RFC 4514)."""
    return x509.Name.from_rfc4514_string(text).rfc4514_string()


def parse_admin(t: Table, base: Path) -> AdminConfig:
    enabled = t.bool("enabled", True)
    ca_text = t.opt_str("client_ca")
    roles_t = t.table("client_roles")
    roles: dict[str, str] = {}
    for subject in roles_t.keys():
        role = roles_t.data[subject]
        if role not in ADMIN_ROLES:
            roles_t.fail(subject, f"role must be one of {', '.join(ADMIN_ROLES)}, not {role!r}")
        try:
            roles[normal_subject(subject)] = role
        except ValueError:
            roles_t.fail(subject, 'not an RFC 4514 subject (e.g. "CN=ops,O=Example")')
    client_ca = None
    if ca_text is not None:
        client_ca = Path(ca_text) if Path(ca_text).is_absolute() else base / ca_text
        if not client_ca.is_file():
            t.fail("client_ca", f"no such file: {client_ca}")
    if roles and client_ca is None:
        t.fail("client_roles", "needs client_ca: the CA certificates that issue those certificates")
    if client_ca is not None and not roles:
        t.fail("client_ca", "no [admin.client_roles]: no certificate would be given a role")
    t.finish()
    return AdminConfig(enabled, client_ca, MappingProxyType(roles))
