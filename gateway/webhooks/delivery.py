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
from datetime import timedelta
from typing import Protocol

from gateway.clock import Clock
from gateway.config.webhooks import WebhookConfig
from gateway.observability.logs import fields
from gateway.observability.metrics import active
from gateway.ports import Transactions
from gateway.webhooks.outbox import Claimed, DueEvent, Subscription, queries_for
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

    async def deliver_due(self) -> int:
        """Claim the rows due now and attempt each once (concurrently); how many."""
        if not await self._tx.read(self._q.any_due, self._clock.now(), list(self._receivers)):
            return 0
        token = secrets.token_hex(16)
        claimed = await self._tx.write(
            self._q.claim, self._clock.now(), list(self._receivers), self.lease, self.batch, token
        )
        if not claimed:
            return 0
        tasks = [asyncio.ensure_future(self._attempt(row)) for row in claimed]
        try:
            # Every attempt runs to its end even when recording another one failed (an
            # outage): what was not recorded stays pending and is tried again.
            results = await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:
            # Shutdown: attempts that had not finished go back to the outbox at once (their
            # rows were not marked, so they stay pending either way: at worst the lease runs
            # out first).
            for task in tasks:
                task.cancel()
            unfinished = [row for row, task in zip(claimed, tasks, strict=True) if task.cancelled()]
            if unfinished:
                await asyncio.shield(self._release(unfinished))
            raise
        for result in results:
            if isinstance(result, Exception):
                raise result
        return len(claimed)

    async def _release(self, rows: Sequence[Claimed]) -> None:
        try:
            await self._tx.write(self._q.release, rows, self._clock.now())
        except Exception as exc:
            log.warning("webhook claims not released (they expire): %s", type(exc).__name__)

    async def _attempt(self, row: Claimed) -> None:
        receiver = self._receivers[row.webhook]
        body = row.payload.encode("utf-8")
        now = self._clock.now()
        sent = headers(receiver.secret, row.id, int(now.timestamp()), body)
        result = await self._sender.send(receiver.url, sent, body, receiver.timeout.total_seconds())
        now = self._clock.now()
        if result.ok:
            assert result.status is not None
            await self._tx.write(self._q.delivered, row, now, result.status)
            self._count(row.webhook, "delivered")
            return
        deadline = row.created_at + receiver.max_age
        if now >= deadline:
            if await self._tx.write(self._q.abandon, row, now, result.status, result.error):
                self._count(row.webhook, "abandoned")
                log.warning(
                    "webhook delivery abandoned",
                    extra=fields(
                        webhook=row.webhook,
                        event=row.event,
                        event_id=row.id,
                        attempts=row.attempts + 1,
                        status=result.status,
                        error=result.error,
                    ),
                )
            return
        wait = retry_delay(row.attempts + 1, self._base, self._cap, self._rng, result.retry_after)
        retry_at = min(now + wait, deadline)
        await self._tx.write(self._q.failed, row, retry_at, result.status, result.error)
        self._count(row.webhook, "failed")
        log.info(
            "webhook delivery failed; will retry",
            extra=fields(
                webhook=row.webhook,
                event=row.event,
                event_id=row.id,
                attempts=row.attempts + 1,
                status=result.status,
                error=result.error,
                retry_in_s=round((retry_at - now).total_seconds(), 1),
            ),
        )

    @staticmethod
    def _count(webhook: str, result: str) -> None:
        metrics = active()
        if metrics is not None:
            metrics.child(metrics.webhook_deliveries, webhook, result).inc()
