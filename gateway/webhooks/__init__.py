"""Event notifications: webhooks delivered from a durable outbox in the database (issue #16).

:mod:`~gateway.webhooks.outbox` turns audit events (and certificates entering their renewal
window) into outbox rows, exactly once per (event, receiver); :mod:`~gateway.webhooks.delivery`
claims due rows, attempts them through a :class:`~gateway.webhooks.delivery.Sender`, retries
with back-off and gives up after a receiver's ``max_age``; :mod:`~gateway.webhooks.signing`
signs each attempt the Standard Webhooks way. The HTTP client and the background task are the
shell's (:mod:`gateway.server.webhooks`); receivers are configured in ``[webhooks.<name>]``
(:mod:`gateway.config.webhooks`).
"""

from __future__ import annotations

from gateway.webhooks.delivery import Attempt, Dispatcher, Sender, retry_delay
from gateway.webhooks.outbox import AUDITED_EVENTS, EVENT_ABANDONED, DueEvent

__all__ = [
    "AUDITED_EVENTS",
    "EVENT_ABANDONED",
    "Attempt",
    "Dispatcher",
    "DueEvent",
    "Sender",
    "retry_delay",
]
