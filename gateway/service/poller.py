"""The pending poller: advances CA-pending requests and recovers ones a crash left
``received`` (the server runs :meth:`Poller.run` as a background task)."""

from __future__ import annotations

import asyncio
import logging

from gateway.errors import CAUnavailable, StoreUnavailable
from gateway.model import RequestRecord, RequestState
from gateway.observability import events
from gateway.service.core import ServiceCore
from gateway.service.enrollment import Enrollment

log = logging.getLogger("certgate.service")


class Poller:
    def __init__(self, core: ServiceCore, enrollment: Enrollment) -> None:
        self._core = core
        self._enrollment = enrollment

    async def poll_pending_once(self, lease_seconds: int = 60) -> int:
        """Advance CA-pending requests and recover ones a crash left ``received``."""
        claimed = await self._core.store.claim_due_polls(self._core.clock.now(), lease_seconds)
        for stored in claimed:
            try:
                await self._advance(stored)
            except Exception:  # one bad request must not stop the poller
                log.exception("poller: request %s could not be advanced", stored.id)
        return len(claimed)

    async def _advance(self, stored: RequestRecord) -> None:
        if stored.state is RequestState.RECEIVED or (
            stored.state is RequestState.PENDING and stored.ca_request_id is None
        ):
            # Recorded but never answered by the CA (crash, or CA was unavailable): resubmit.
            request = await self._enrollment.rebuild(stored)
            approved = stored.state is RequestState.PENDING
            await self._enrollment.decide(stored, request, approved=approved)
            return
        if stored.state is RequestState.PENDING and stored.ca_request_id:
            connector = self._core.connector(stored.connector or self._core.default_connector)
            try:
                with events.connector_call(connector.name, "poll") as call:
                    result = await connector.poll(stored.ca_request_id)
                    call.outcome(result)
            except CAUnavailable:
                return  # the lease already pushed next_poll_at ahead
            await self._enrollment.recorded.record(stored, connector.name, result)

    async def run(self, stop: asyncio.Event, interval: float, lease: int) -> None:
        """Poll until ``stop`` is set (the server's background task)."""
        while not stop.is_set():
            try:
                await self.poll_pending_once(lease)
            except StoreUnavailable:
                pass  # the store logs an outage once; no traceback every interval
            except Exception:
                log.exception("poller iteration failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass
