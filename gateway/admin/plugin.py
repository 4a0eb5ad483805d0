"""How front-ends (and connectors) add their own resources to the admin API (/api/v1).

The admin API is served by the shell (:mod:`gateway.server.admin`), which owns authentication
(bearer tokens or the console's session cookie plus CSRF header), the role check, the
problem documents, the audit event for every call and the OpenAPI document. A plug-in only
describes operations and answers them, framework-neutral: it imports no web framework.

A package registers an entry point in group ``certgate.admin`` (``est =
"protocols.est.admin:register"``) whose object is a :data:`Register`. The shell calls it once
at start-up for every protocol that is enabled, with an :class:`AdminContext`, and mounts the
returned :class:`AdminOperation` objects under ``/api/v1``.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.clock import Clock
from gateway.ports import Store, Transactions


class Role(enum.IntEnum):
    """Roles are ordered: each one may do everything the ones below it may."""

    VIEWER = 1  # read everything an operator sees (never a secret)
    APPROVER = 2  # + approve and deny requests, revoke certificates
    ADMIN = 3  # + manage tokens, EST users and codes, SCEP challenges, ACME EAB keys


@dataclass(frozen=True)
class AdminCall:
    """One authenticated, authorised call. ``actor`` names the token (``token:<name>``) and is
    what the plug-in writes into any audit event it records itself."""

    actor: str
    role: Role
    path_params: Mapping[str, str]
    query: Mapping[str, str]
    body: Any  # parsed JSON (``None`` when the request had no body)


@dataclass(frozen=True)
class AdminReply:
    """A JSON answer (``body`` serialisable) or, with ``content_type`` set, raw bytes."""

    status: int = 200
    body: Any = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class AdminProblem(Exception):
    """Raised by a handler: rendered as an RFC 9457 problem document with this status."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


Handler = Callable[[AdminCall], Awaitable[AdminReply]]


@dataclass(frozen=True)
class AdminOperation:
    """``path`` is relative to /api/v1 with OpenAPI-style parameters (``/est/users/{username}``).

    ``parameters``, ``request_body`` and ``responses`` are OpenAPI 3.1 objects copied into the
    document as they are; the shell adds the security requirement, 401/403 responses and the
    problem-document schema. ``audit`` names the audit event the shell records for a call
    that changes something (``None`` for reads, which are not audited).
    """

    method: str  # "GET", "POST", "PUT", "DELETE"
    path: str
    role: Role
    operation_id: str
    summary: str
    handler: Handler
    tag: str
    parameters: tuple[Mapping[str, Any], ...] = ()
    request_body: Mapping[str, Any] | None = None
    responses: Mapping[str, Any] = field(default_factory=dict)
    audit: str | None = None


@dataclass(frozen=True)
class AdminContext:
    """What a plug-in may use: its protocol's configuration table, the transactions on its
    own tables, the core store (for audit events), the clock and the gateway's data directory
    (as served: ``certgate serve --data`` included; ``None`` only in tests that need none)."""

    name: str
    settings: Mapping[str, Any]
    config_file: str
    transactions: Transactions
    store: Store
    clock: Clock
    data_dir: Path | None = None


Register = Callable[[AdminContext], list[AdminOperation]]
