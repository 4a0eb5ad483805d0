"""ACME state as the handlers see it: the records (defined in :mod:`protocols.acme.records`,
re-exported here), the derived order status, and the do-nothing body.

The statements that read and write these records are the repository's
(:class:`protocols.acme.repository.AcmeRepository`, chosen once when the front-end opens its
state: ``acme.repo``); its methods are transaction bodies run by ``store.read`` /
``store.write``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Connection

from protocols.acme.records import Account as Account
from protocols.acme.records import Authz as Authz
from protocols.acme.records import Challenge as Challenge
from protocols.acme.records import NewAuthz as NewAuthz
from protocols.acme.records import Order as Order

#: Authorization states that make an order invalid (RFC 8555 §7.1.6).
DEAD_AUTHZ = ("invalid", "deactivated", "expired", "revoked")


def effective_order_status(order: Order, authzs: Sequence[Authz], now: datetime) -> str:
    """RFC 8555 §7.1.6: a stored ``pending`` order is ``invalid`` once expired or once an
    authorization died, ``ready`` once all are valid, else ``pending``."""
    if order.status != "pending":
        return order.status
    if order.expires_at <= now:
        return "invalid"
    states = [a.effective_status(now) for a in authzs]
    if any(s in DEAD_AUTHZ for s in states):
        return "invalid"
    if states and all(s == "valid" for s in states):
        return "ready"
    return "pending"


def nothing(conn: Connection) -> None:
    """A write body that writes nothing (a read-only POST only takes its nonce)."""
    return None
