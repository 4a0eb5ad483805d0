"""Enrollment events: where a decision becomes one log line and its metrics.

:class:`gateway.service.EnrollmentService` calls :func:`settled` wherever it records an
outcome -- issued, pending, denied -- whichever protocol (or the CLI, an approval, the pending
poller) asked, so every front-end gets the same INFO line:

* ``certificate issued`` with protocol, template, requester, subject, serial, request_id, kind;
* ``request refused`` with protocol, template, requester, request_id, rule, reason, code;
* ``request pending`` with protocol, template, requester, request_id, reason.

A repeated transaction answered from the record is no new decision and logs nothing. CA
connector calls are timed and counted through :func:`connector_call`; a front-end's own
refusals (EST 401/403, SCEP failInfo) go through :func:`protocol_refusal`. None of these lines
carries a secret: requests are described by names and ids, never by credentials.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import TypeVar

from gateway.errors import CAUnavailable, CertgateError
from gateway.model import (
    CertificateRecord,
    ConnectorPending,
    Denied,
    Issued,
    Pending,
    RequestRecord,
    serial_hex,
)
from gateway.observability.logs import fields
from gateway.observability.metrics import active

__all__ = ["ConnectorCall", "connector_call", "failed", "protocol_refusal", "settled"]

log = logging.getLogger("certgate.enrollment")
connector_log = logging.getLogger("certgate.connector")

OutcomeT = TypeVar("OutcomeT", Issued, Pending, Denied)
Fields = dict[str, object]


def _decision(
    record: RequestRecord,
    outcome: Issued | Pending | Denied,
    inventory: CertificateRecord | None = None,
) -> tuple[str, str, Fields]:
    """What ``outcome`` is for the log and the metrics: its result (``issued``, ``pending``,
    ``denied``), its log message, and the line's fields after the requester's (see the module
    docstring). ``inventory``: the issued certificate's record, whose subject and serial text
    are the certificate's, already computed (decoding them again costs ~10 us)."""
    if isinstance(outcome, Issued):
        if inventory is not None:
            subject, serial = inventory.subject, inventory.serial
        else:
            certificate = outcome.certificate
            subject = certificate.subject.rfc4514_string()
            serial = serial_hex(certificate.serial_number)
        return (
            "issued",
            "certificate issued",
            {
                "subject": subject,
                "serial": serial,
                "request_id": record.id,
                "kind": record.kind.value,
            },
        )
    if isinstance(outcome, Pending):
        return (
            "pending",
            "request pending",
            {"request_id": record.id, "reason": outcome.reason.value},
        )
    return (
        "denied",
        "request refused",
        {
            "request_id": record.id,
            "rule": outcome.rule or "-",
            "reason": outcome.detail,
            "code": outcome.code,
        },
    )


def _record_line(level: int, message: str, record: RequestRecord, detail: Fields) -> None:
    """One line about ``record``: protocol, template and requester, then ``detail``."""
    log.log(
        level,
        message,
        extra=fields(
            protocol=record.protocol,
            template=record.template,
            requester=record.requester.principal,
            **detail,
        ),
    )


def settled(
    record: RequestRecord, outcome: OutcomeT, inventory: CertificateRecord | None = None
) -> OutcomeT:
    """Log and count the outcome just recorded for ``record``; returns ``outcome``.
    ``inventory``: an issued certificate's inventory record, if at hand (same line)."""
    name, message, detail = _decision(record, outcome, inventory)
    _record_line(logging.INFO, message, record, detail)
    metrics = active()
    if metrics is not None:
        metrics.child(metrics.enrollments, record.protocol, record.template, name).inc()
        if isinstance(outcome, Denied):
            metrics.child(metrics.denials, record.protocol, outcome.rule or "-").inc()
    return outcome


def failed(record: RequestRecord, detail: str) -> None:
    """The connector failed for good on ``record`` (the request is recorded ``failed``)."""
    _record_line(
        logging.WARNING, "request failed", record, {"request_id": record.id, "reason": detail}
    )
    metrics = active()
    if metrics is not None:
        metrics.child(metrics.enrollments, record.protocol, record.template, "failed").inc()


def _result(outcome: object) -> str:
    if isinstance(outcome, Issued):
        return "issued"
    if isinstance(outcome, ConnectorPending | Pending):
        return "pending"
    if isinstance(outcome, Denied):
        return "denied"
    return "ok"


class ConnectorCall:
    """Times one CA connector call and counts it by result: issued, pending, denied or ok
    (what :meth:`outcome` was given), unavailable (:class:`CAUnavailable`) or error."""

    __slots__ = ("_connector", "_operation", "_result", "_started")

    def __init__(self, connector: str, operation: str) -> None:
        self._connector = connector
        self._operation = operation
        self._result = "ok"
        self._started = 0.0

    def __enter__(self) -> ConnectorCall:
        self._started = time.perf_counter()
        return self

    def outcome(self, outcome: object) -> None:
        """Note what the call returned (an Issued, ConnectorPending or Denied)."""
        self._result = _result(outcome)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        seconds = time.perf_counter() - self._started
        result = self._result
        if isinstance(exc, CAUnavailable):
            result = "unavailable"
        elif exc is not None:
            result = "error"
        if isinstance(exc, Exception):
            detail = exc.detail if isinstance(exc, CertgateError) else type(exc).__name__
            connector_log.warning(
                "connector %s %s: %s (%s)",
                self._connector,
                self._operation,
                result,
                detail,
                extra=fields(connector=self._connector, operation=self._operation, result=result),
            )
        elif connector_log.isEnabledFor(logging.DEBUG):
            connector_log.debug(
                "connector %s %s: %s in %.1f ms",
                self._connector,
                self._operation,
                result,
                seconds * 1000,
                extra=fields(connector=self._connector, operation=self._operation, result=result),
            )
        metrics = active()
        if metrics is not None:
            labels = (self._connector, self._operation)
            metrics.child(metrics.connector_calls, *labels, result).inc()
            metrics.child(metrics.connector_seconds, *labels).observe(seconds)


def connector_call(connector: str, operation: str) -> ConnectorCall:
    """``with connector_call("local", "submit") as call: call.outcome(await ...)``."""
    return ConnectorCall(connector, operation)


def protocol_refusal(protocol: str, code: str, reason: str, **context: object) -> None:
    """A front-end refused a request before or beside the service (EST 401/403, SCEP
    failInfo): one INFO line on ``certgate.<protocol>`` naming the code and the reason the
    client was given, and ``certgate_protocol_refusals_total{protocol,code}``. ``context``
    describes the request (label, endpoint, transaction, peer), never its credentials."""
    logging.getLogger(f"certgate.{protocol}").info(
        "%s request refused (%s): %s",
        protocol.upper(),
        code,
        reason,
        extra=fields(protocol=protocol, code=code, reason=reason, **context),
    )
    metrics = active()
    if metrics is not None:
        metrics.child(metrics.protocol_refusals, protocol, code).inc()
