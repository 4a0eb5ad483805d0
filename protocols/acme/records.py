"""ACME state records: what the ACME repository (:mod:`protocols.acme.repository`) reads and
writes (RFC 8555 §7.1).

They live apart from the implementations so that both build them: SQLAlchemy Core
(:mod:`protocols.acme.repository_core`) and raw SQLite (the rows of
:mod:`protocols.acme.sqlite_rows`); :mod:`protocols.acme.state` re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Account:
    """An ACME account (RFC 8555 §7.1.2), with its external account binding if any."""

    id: str
    thumbprint: str
    jwk: dict[str, Any]
    status: str
    contact: list[str]
    eab_kid: str | None
    principal: str | None = None  # from the EAB key, when bound
    eab_templates: tuple[str, ...] = ()
    eab_domains: tuple[str, ...] = ()
    tos_agreed: str | None = None  # the terms-of-service URL last agreed to (§7.3.3)


@dataclass(frozen=True)
class Challenge:
    """A challenge of an authorization (RFC 8555 §7.1.5)."""

    id: str
    authz_id: str
    type: str
    token: str
    status: str
    validated_at: datetime | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class Authz:
    """An authorization (RFC 8555 §7.1.4); ``challenges`` only when asked for."""

    id: str
    account_id: str
    type: str
    value: str
    wildcard: bool
    status: str
    expires_at: datetime
    challenges: tuple[Challenge, ...] = ()

    def effective_status(self, now: datetime) -> str:
        """The stored status, or ``expired`` once a pending/valid one is past its expiry."""
        if self.status in ("pending", "valid") and self.expires_at <= now:
            return "expired"
        return self.status


@dataclass(frozen=True)
class Order:
    """An order (RFC 8555 §7.1.3) as stored: ``status`` ``pending`` means "derive it from the
    authorizations" (see :func:`protocols.acme.state.effective_order_status`)."""

    id: str
    account_id: str
    status: str
    template: str
    profile: str | None
    identifiers: list[dict[str, str]]
    authz_ids: list[str]
    not_before: datetime | None
    not_after: datetime | None
    expires_at: datetime
    error: dict[str, Any] | None
    replaces: str | None
    finalize_attempt: int
    request_id: str | None
    certificate_serial: str | None


@dataclass(frozen=True)
class NewAuthz:
    """An authorization to create with a new order, with its challenges."""

    id: str
    type: str
    value: str
    wildcard: bool
    status: str  # "pending", or "valid" when pre-authorized
    expires_at: datetime
    challenges: tuple[tuple[str, str, str], ...]  # (id, type, token)
