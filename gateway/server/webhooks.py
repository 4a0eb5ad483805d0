"""The webhook background task and its HTTP client (aiohttp), started in the app's lifecycle.

Per serving process, one task fans the audit trail out into the outbox, queues
``certificate.due`` for certificates entering their renewal window and prunes the outbox
(every ``[webhooks] due_interval``), every ``poll_interval``; one task per receiver delivers
that receiver's due rows every ``poll_interval`` (at once again while batches come full), so
a receiver that hangs until its timeout slows no other one. Every instance on one database
may run them: the outbox's keys and claims (:mod:`gateway.webhooks.outbox`) keep each event
to one row and each row to one worker.

Shutdown (:meth:`WebhookRunner.close`): the attempts in flight get the longest receiver
timeout to finish and be recorded; any still running then are cancelled and their rows handed
back to the outbox at once. A row is never lost either way: it stays pending until an attempt
is recorded as delivered, and a claim left by a process that died expires after its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import aiohttp

from gateway.clock import Clock
from gateway.config import WebhooksConfig
from gateway.errors import CertgateError
from gateway.ports import Transactions
from gateway.service import EnrollmentService
from gateway.webhooks import Attempt, Dispatcher, DueEvent, Sender

__all__ = ["AiohttpSender", "WebhookRunner", "start_webhooks"]

log = logging.getLogger("certgate.webhooks")

#: How much of a receiver's answer is read (and thrown away): enough to reuse the connection.
_MAX_ANSWER = 64 * 1024


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (RFC 9110 §10.2.3; only the delay-seconds form)."""
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


class AiohttpSender:
    """POSTs with one pooled ``aiohttp.ClientSession``; no redirects, no proxy from the
    environment, no cookies. Failures come back as :class:`Attempt` errors that name the
    kind of failure only (never the URL, which may hold a receiver's token)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, seconds: float
    ) -> Attempt:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(), headers={"User-Agent": "certgate-webhooks"}
            )
        try:
            async with self._session.post(
                url,
                data=body,
                headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=seconds),
                allow_redirects=False,
            ) as response:
                await response.content.read(_MAX_ANSWER)
                retry_after = (
                    _retry_after(response.headers.get("Retry-After"))
                    if response.status in (429, 503)
                    else None
                )
                return Attempt(status=response.status, retry_after=retry_after)
        except TimeoutError:
            return Attempt(error="timeout")
        except aiohttp.ClientSSLError:
            return Attempt(error="TLS failure")
        except aiohttp.ClientConnectionError:
            return Attempt(error="connection failed")
        except aiohttp.ClientError as exc:
            return Attempt(error=f"HTTP client error ({type(exc).__name__})")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class WebhookRunner:
    """The background task (see the module docstring); ``close`` stops it."""

    def __init__(
        self,
        config: WebhooksConfig,
        transactions: Transactions,
        service: EnrollmentService,
        clock: Clock,
        sender: Sender | None = None,
    ) -> None:
        self._config = config
        self._service = service
        self._sender = sender or AiohttpSender()
        self.dispatcher = Dispatcher(
            transactions, config.receivers, self._sender, clock, retry_cap=config.retry_cap
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False
        self._next_due_scan = 0.0
        longest = max((r.timeout for r in config.receivers.values()), default=None)
        self._grace = (longest.total_seconds() if longest else 0) + 1

    def start(self) -> None:
        """One task queues (fan-out, due scan, pruning); one per receiver delivers, so a
        receiver that hangs until its timeout slows only its own deliveries."""
        self._tasks = [
            asyncio.create_task(self._every_round(self.prepare), name="certgate-webhooks")
        ]
        for name in self._config.receivers:
            self._tasks.append(
                asyncio.create_task(
                    self._every_round(functools.partial(self._deliver, name)),
                    name=f"certgate-webhooks-{name}",
                )
            )

    async def prepare(self) -> None:
        """The queueing half of a round: fan the audit trail out (on a database that never
        had a webhook, this places the cursor) and, every ``due_interval``, queue the
        certificates that became due and prune the rows no longer needed."""
        await self.dispatcher.fan_out()
        if time.monotonic() >= self._next_due_scan:  # and, as often, prune finished rows
            if self.dispatcher.wants_due:
                await self.scan_due()
            await self.dispatcher.prune()
            self._next_due_scan = time.monotonic() + self._config.due_interval.total_seconds()

    async def _deliver(self, name: str) -> None:
        """Deliver ``name``'s due rows, batch after batch while batches come full."""
        while not self._stop.is_set():
            if await self.dispatcher.deliver_due((name,)) < self.dispatcher.batch:
                return

    async def _every_round(self, step: Callable[[], Awaitable[None]]) -> None:
        while not self._stop.is_set():
            try:
                await step()
                if self._failing:
                    self._failing = False
                    log.warning("webhook outbox works again")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an outage: said once, retried next round
                if not self._failing:
                    self._failing = True
                    cause = exc.detail if isinstance(exc, CertgateError) else type(exc).__name__
                    log.warning("webhook outbox round failed (retrying): %s", cause)
                log.debug("webhook outbox round failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stop.wait(), self._config.poll_interval.total_seconds()
                )

    async def scan_due(self) -> int:
        """Queue ``certificate.due`` for the certificates whose renewal window is open."""
        due = [
            DueEvent(
                serial=d.record.serial,
                request_id=d.record.request_id,
                subject=d.record.subject,
                template=d.record.template,
                not_after=d.record.not_after,
                window_start=d.window_start,
                reason=d.reason,
            )
            for d in await self._service.due_certificates()
        ]
        return await self.dispatcher.queue_due(due)

    async def close(self) -> None:
        """Stop: let attempts in flight finish (up to the longest timeout), then cancel."""
        self._stop.set()
        tasks, self._tasks = self._tasks, []
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._grace)
            for task in pending:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        close = getattr(self._sender, "close", None)
        if close is not None:
            await close()


async def start_webhooks(
    config: WebhooksConfig, transactions: Transactions, service: EnrollmentService, clock: Clock
) -> WebhookRunner | None:
    """Start the task when ``[webhooks]`` names a receiver (else ``None``). The queueing
    step of the first round runs before this returns, so on a database that never had a
    webhook the fan-out's cursor is placed before the gateway serves its first request
    (events from then on are all delivered), and certificates already due are queued."""
    if not config.receivers:
        return None
    runner = WebhookRunner(config, transactions, service, clock)
    try:
        await runner.prepare()
    except Exception as exc:  # the task tries again; the store reports its own outage
        log.warning("webhook outbox not ready at start-up: %s", type(exc).__name__)
    runner.start()
    return runner
