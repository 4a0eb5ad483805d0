"""Delivering the outbox: claim, attempt, record; back-off, give-up, metrics and log lines.

Framework-neutral: the HTTP attempt is a :class:`Sender` (the shell's is aiohttp's, in
:mod:`gateway.server.webhooks`), time is a :class:`gateway.clock.Clock` and the jitter a
``random`` function, so tests drive every step.

Retries: after a failed attempt (no answer, a timeout, anything but 2xx) the row waits
``min(retry_cap, retry_base * 2**(attempts-1))``, jittered to between half and all of it
(so receivers coming back are not hit by every sender at once), longer if the receiver asked
with ``Retry-After`` (capped too), and never past the receiver's ``max_age`` after the row was
made: the last attempt is made then, and when it fails the row is abandoned -- audited as
``webhook.abandoned``, counted, and logged once at WARNING (the receiver's name and the event,
never its URL or secret). Delivery is at least once: a receiver drops repeats by
``webhook-id``, which is the same on every attempt at one row.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from gateway.clock import Clock
from gateway.config.webhooks import WebhookConfig
from gateway.observability.logs import fields
from gateway.observability.metrics import active
from gateway.ports import Transactions
from gateway.webhooks.outbox import (
    Claimed,
    DueEvent,
    OutboxQueries,
    Subscription,
    queries_for,
)
from gateway.webhooks.retention import prune
from gateway.webhooks.signing import headers

__all__ = ["Attempt", "Dispatcher", "Sender", "retry_delay"]

log = logging.getLogger("certgate.webhooks")


@dataclass(frozen=True)
class Attempt:
    """What one HTTP attempt got: a status, or an error (a short description, no URL)."""

    status: int | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Sender(Protocol):
    """POSTs one body; never raises for the receiver's failures, returns them."""

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, seconds: float
    ) -> Attempt: ...


def retry_delay(
    attempts: int,
    base: timedelta,
    cap: timedelta,
    rng: Callable[[], float] = random.random,
    retry_after: float | None = None,
) -> timedelta:
    """The wait after the ``attempts``-th failed attempt (see the module docstring)."""
    full = min(cap.total_seconds(), base.total_seconds() * 2 ** max(attempts - 1, 0))
    wait = full / 2 + rng() * full / 2
    if retry_after is not None:
        wait = max(wait, min(retry_after, cap.total_seconds()))
    return timedelta(seconds=wait)


class Dispatcher:
    """Fan-out, the certificate.due queue and delivery for the configured receivers."""

    def __init__(
        self,
        transactions: Transactions,
        receivers: Mapping[str, WebhookConfig],
        sender: Sender,
        clock: Clock,
        *,
        retry_base: timedelta = timedelta(seconds=1),
        retry_cap: timedelta = timedelta(hours=1),
        rng: Callable[[], float] = random.random,
        batch: int = 20,
        fan_out_batch: int = 500,
    ) -> None:
        self._tx = transactions
        self._q = queries_for(transactions.dialect_name)
        self._receivers = dict(receivers)
        self._subs = [Subscription(r.name, r.events, r.max_age) for r in self._receivers.values()]
        self._sender = sender
        self._clock = clock
        self._base = retry_base
        self._cap = retry_cap
        self._rng = rng
        self.batch = batch
        self._fan_out_batch = fan_out_batch
        longest = max((r.timeout for r in self._receivers.values()), default=timedelta(0))
        #: Long enough for the slowest attempt and its bookkeeping; a claim left by a process
        #: that died is claimable again after it.
        self.lease = longest * 2 + timedelta(seconds=30)

    @property
    def wants_due(self) -> bool:
        """Whether any receiver subscribes to ``certificate.due``."""
        return any("certificate.due" in s.events for s in self._subs)

    async def fan_out(self) -> int:
        """Queue every audit event after the cursor; how many (event, receiver) rows were
        offered (one already queued, a request still pending, is not queued again)."""
        if not await self._tx.read(self._q.has_news):
            return 0
        total = 0
        while True:
            read, queued = await self._tx.write(
                self._q.fan_out, self._clock.now(), self._subs, self._fan_out_batch
            )
            total += queued
            if read < self._fan_out_batch:
                return total

    async def queue_due(self, due: Sequence[DueEvent]) -> int:
        """Queue ``certificate.due`` for certificates not announced yet."""
        return await self._tx.write(self._q.queue_due, self._clock.now(), self._subs, due)

    async def prune(self) -> int:
        """Delete finished rows no longer needed (:mod:`gateway.webhooks.retention`)."""
        return await self._tx.write(prune, self._clock.now())

    async def deliver_due(self, webhooks: Sequence[str] | None = None) -> int:
        """Claim the rows due now (of ``webhooks``, default every receiver), attempt each
        once (concurrently) and record the results in one transaction (one commit per round,
        not per row); how many were claimed."""
        names = list(self._receivers if webhooks is None else webhooks)
        if not await self._tx.read(self._q.any_due, self._clock.now(), names):
            return 0
        token = secrets.token_hex(16)
        claimed = await self._tx.write(
            self._q.claim, self._clock.now(), names, self.lease, self.batch, token
        )
        if not claimed:
            return 0
        tasks = [asyncio.ensure_future(self._send(row)) for row in claimed]
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:
            # Shutdown: the attempts that ended are recorded, the others go back to the
            # outbox at once (unrecorded, they stay pending anyway: at worst until the lease
            # runs out).
            for task in tasks:
                task.cancel()
            await asyncio.shield(self._record(claimed, tasks))
            raise
        await self._record(claimed, tasks)
        return len(claimed)

    async def _send(self, row: Claimed) -> tuple[Attempt, datetime]:
        receiver = self._receivers[row.webhook]
        body = row.payload.encode("utf-8")
        sent = headers(receiver.secret, row.id, int(self._clock.now().timestamp()), body)
        result = await self._sender.send(receiver.url, sent, body, receiver.timeout.total_seconds())
        return result, self._clock.now()

    async def _record(
        self, claimed: Sequence[Claimed], tasks: Sequence[asyncio.Future[Any]]
    ) -> None:
        """Record every ended attempt and hand the rest back, in one transaction; then count
        and log what was recorded."""
        decided: list[_Decided] = []
        unfinished: list[Claimed] = []
        for row, task in zip(claimed, tasks, strict=True):
            if not task.done() or task.cancelled() or task.exception() is not None:
                unfinished.append(row)
                continue
            result, at = task.result()
            decided.append(self._decide(row, result, at))
        try:
            recorded = await self._tx.write(
                _record_body, self._q, decided, unfinished, self._clock.now()
            )
        except Exception as exc:  # the rows stay claimed until the lease runs out, then retried
            log.warning("webhook attempts not recorded (retried later): %s", type(exc).__name__)
            raise
        for outcome, ours in zip(decided, recorded, strict=True):
            if ours:
                self._report(outcome)

    def _decide(self, row: Claimed, result: Attempt, at: datetime) -> _Decided:
        """Delivered, abandoned (past the receiver's max_age) or retried at a jittered time."""
        if result.ok:
            return _Decided(row, result, at, "delivered", None)
        deadline = row.created_at + self._receivers[row.webhook].max_age
        if at >= deadline:
            return _Decided(row, result, at, "abandoned", None)
        wait = retry_delay(row.attempts + 1, self._base, self._cap, self._rng, result.retry_after)
        return _Decided(row, result, at, "failed", min(at + wait, deadline))

    def _report(self, d: _Decided) -> None:
        self._count(d.row.webhook, d.outcome)
        if d.outcome == "delivered":
            return
        line = fields(
            webhook=d.row.webhook,
            event=d.row.event,
            event_id=d.row.id,
            attempts=d.row.attempts + 1,
            status=d.result.status,
            error=d.result.error,
            retry_in_s=None
            if d.retry_at is None
            else round((d.retry_at - d.at).total_seconds(), 1),
        )
        if d.outcome == "abandoned":
            log.warning("webhook delivery abandoned", extra=line)
        else:
            log.info("webhook delivery failed; will retry", extra=line)

    @staticmethod
    def _count(webhook: str, result: str) -> None:
        metrics = active()
        if metrics is not None:
            metrics.child(metrics.webhook_deliveries, webhook, result).inc()


@dataclass(frozen=True)
class _Decided:
    """What to record of one ended attempt."""

    row: Claimed
    result: Attempt
    at: datetime
    outcome: str  # delivered, failed, abandoned
    retry_at: datetime | None


def _record_body(
    conn: Connection,
    q: OutboxQueries,
    decided: Sequence[_Decided],
    unfinished: Sequence[Claimed],
    now: datetime,
) -> list[bool]:
    """Transaction body: each decision (whether the row was still ours), then the release."""
    recorded = []
    for d in decided:
        status, error = d.result.status, d.result.error
        if d.outcome == "delivered":
            assert status is not None
            q.delivered(conn, d.row, d.at, status)
            recorded.append(True)
        elif d.outcome == "abandoned":
            recorded.append(q.abandon(conn, d.row, d.at, status, error))
        else:
            assert d.retry_at is not None
            recorded.append(q.failed(conn, d.row, d.retry_at, status, error))
    q.release(conn, unfinished, now)
    return recorded
