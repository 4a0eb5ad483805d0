"""Prometheus metrics (prometheus_client): the metric families, multiprocess mode for
``certgate serve --workers N``, and the exposition.

Counters and histograms are kept per process. With one process they live in memory; with
``--workers N`` the parent creates a fresh, private directory for this run and names it in
``PROMETHEUS_MULTIPROC_DIR`` before it starts the workers (:func:`prepare_multiprocess`), each
worker's prometheus_client then keeps its values in memory-mapped files there, and a scrape sums
every worker's files: whichever worker answers, the figures are the same. Values that are facts
of the shared state rather than of a process -- requests pending in the store, certificate
expiry -- are computed at scrape time (:class:`ScrapeState`), so they are right across workers
and restarts alike.

Metric names (``docs/grafana-dashboard.json`` draws them):

* ``certgate_enrollments_total{protocol,template,outcome}``: decisions on enrollment requests,
  ``outcome`` issued, pending, denied or failed (a request approved later, or answered by the CA
  after a pending state, counts again with its final outcome);
* ``certgate_denials_total{protocol,rule}``: refusals by the policy rule that refused (``ca``
  for the CA, ``manager`` for a certificate manager);
* ``certgate_pending_requests{reason,template}``: requests pending now (``approval`` or ``ca``);
* ``certgate_connector_calls_total{connector,operation,result}`` and
  ``certgate_connector_call_duration_seconds{connector,operation}``;
* ``certgate_http_request_duration_seconds{protocol,operation}`` and
  ``certgate_http_responses_total{protocol,operation,code}``: labelled by route, never by path;
* ``certgate_protocol_refusals_total{protocol,code}``: EST 401/403, SCEP failInfo;
* ``certgate_certificate_expiry_seconds{kind,name,role}``: seconds until notAfter of the CA
  chains (``kind="ca"``, ``name`` the connector) and of the listeners' certificates;
* ``certgate_store_up``: 1 if the scrape could read the store;
* ``certgate_webhook_deliveries_total{webhook,result}``: webhook attempts, ``result`` delivered,
  failed (retried later) or abandoned (:mod:`gateway.webhooks.delivery`);
* ``certgate_webhook_backlog{webhook}``: outbox rows not delivered yet (at scrape time);
* ``certgate_ocsp_responses_total{method,status}``: OCSP responses (GET or POST) by
  OCSPResponseStatus (``successful``, ``malformedRequest``, ``unauthorized``...), and
  ``certgate_ocsp_certificate_statuses_total{status}``: their answers (``good``, ``revoked``,
  ``unknown``). OCSP lookups are reads: counted here, never audit events.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram
    from prometheus_client.metrics import MetricWrapperBase
    from prometheus_client.metrics_core import Metric

    M = TypeVar("M", bound=MetricWrapperBase)

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROC_ENV",
    "CertificateExpiry",
    "Metrics",
    "ScrapeState",
    "activate",
    "active",
    "exposition",
    "prepare_multiprocess",
]

#: prometheus_client's multiprocess directory (read when prometheus_client is imported).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: What :func:`exposition` writes: the Prometheus text format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Request latencies: from a cached GET (ms) to an RSA key generation or a remote CA (s).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONNECTOR_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0)


class Metrics:
    """The process's metric families (one instance per process: :func:`activate`)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self._children: dict[tuple[int, tuple[str, ...]], MetricWrapperBase] = {}

        self.enrollments: Counter = Counter(
            "certgate_enrollments",
            "Decisions on enrollment requests by protocol, template and outcome",
            ["protocol", "template", "outcome"],
        )
        self.denials: Counter = Counter(
            "certgate_denials", "Refused enrollment requests by rule", ["protocol", "rule"]
        )
        self.connector_calls: Counter = Counter(
            "certgate_connector_calls",
            "CA connector calls by connector, operation and result",
            ["connector", "operation", "result"],
        )
        self.connector_seconds: Histogram = Histogram(
            "certgate_connector_call_duration_seconds",
            "CA connector call duration",
            ["connector", "operation"],
            buckets=CONNECTOR_BUCKETS,
        )
        self.http_seconds: Histogram = Histogram(
            "certgate_http_request_duration_seconds",
            "HTTP request duration by the route's protocol and operation",
            ["protocol", "operation"],
            buckets=HTTP_BUCKETS,
        )
        self.http_responses: Counter = Counter(
            "certgate_http_responses",
            "HTTP responses by the route's protocol and operation and the status code",
            ["protocol", "operation", "code"],
        )
        self.protocol_refusals: Counter = Counter(
            "certgate_protocol_refusals",
            "Protocol-level refusals (EST 401/403, SCEP failInfo) by protocol and code",
            ["protocol", "code"],
        )
        self.webhook_deliveries: Counter = Counter(
            "certgate_webhook_deliveries",
            "Webhook delivery attempts by receiver and result (delivered, failed, abandoned)",
            ["webhook", "result"],
        )

        self.ocsp_responses: Counter = Counter(
            "certgate_ocsp_responses",
            "OCSP responses by HTTP method and OCSPResponseStatus",
            ["method", "status"],
        )
        self.ocsp_statuses: Counter = Counter(
            "certgate_ocsp_certificate_statuses",
            "Certificate statuses answered by OCSP (good, revoked, unknown)",
            ["status"],
        )

    def child(self, metric: M, *values: str) -> M:
        """``metric.labels(*values)``, remembered: every issuance and request asks for the
        same few label sets, and prometheus_client validates and locks on each ``labels``."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found  # type: ignore[return-value]


_ACTIVE: Metrics | None = None


def activate() -> Metrics:
    """Start counting in this process (a serving process calls this; the CLI never does, so
    it neither imports prometheus_client nor counts)."""
    global _ACTIVE
    if _ACTIVE is None:
        from prometheus_client import disable_created_metrics

        # No ``_created`` series: multiprocess mode has none, so a scrape looks the same with
        # one process or N, and every labelled counter costs one series, not two.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        _ACTIVE = Metrics()
    return _ACTIVE


def active() -> Metrics | None:
    """The metric families if this process counts, else ``None``."""
    return _ACTIVE


def prepare_multiprocess() -> Path:
    """Before ``serve --workers N`` starts its workers: a new private directory for this run
    (so counts from an earlier run never leak in), named in ``PROMETHEUS_MULTIPROC_DIR`` for
    the workers to inherit, and removed when the parent exits. It lives under the system's
    temporary directory (``$TMPDIR``): the workers' memory-mapped files belong on local
    storage, not on a data directory that may be a network mount."""
    path = Path(tempfile.mkdtemp(prefix="certgate-metrics-"))  # 0700
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


@dataclass(frozen=True)
class CertificateExpiry:
    """One certificate whose remaining validity is exported."""

    kind: str  # "ca" or "listener"
    name: str  # the connector or the listener
    role: str  # "issuing", "intermediate", "root" for a CA chain; "server" for a listener
    not_after: datetime


@dataclass(frozen=True)
class ScrapeState:
    """What a scrape reads from shared state: pending counts by ``(reason, template)``
    (``None`` when the store could not be read), certificates, and the time of the scrape."""

    now: datetime
    pending: Mapping[tuple[str, str], int] | None
    certificates: Sequence[CertificateExpiry] = field(default_factory=tuple)
    #: Webhook outbox rows pending, by receiver (``None``: not read)
    webhook_backlog: Mapping[str, int] | None = None


class _ScrapeCollector:
    """A prometheus_client collector over one :class:`ScrapeState`."""

    def __init__(self, state: ScrapeState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        state = self._state
        up = GaugeMetricFamily("certgate_store_up", "1 if this scrape could read the store")
        up.add_metric([], 0 if state.pending is None else 1)
        yield up
        if state.pending is not None:
            pending = GaugeMetricFamily(
                "certgate_pending_requests",
                "Requests pending now, by reason (approval, ca) and template",
                labels=["reason", "template"],
            )
            for (reason, template), count in sorted(state.pending.items()):
                pending.add_metric([reason, template], count)
            yield pending
        expiry = GaugeMetricFamily(
            "certgate_certificate_expiry_seconds",
            "Seconds until notAfter of the CA and listener certificates",
            labels=["kind", "name", "role"],
        )
        for cert in state.certificates:
            seconds = (cert.not_after - state.now).total_seconds()
            expiry.add_metric([cert.kind, cert.name, cert.role], seconds)
        yield expiry
        if state.webhook_backlog is not None:
            backlog = GaugeMetricFamily(
                "certgate_webhook_backlog",
                "Webhook outbox rows not delivered yet, by receiver",
                labels=["webhook"],
            )
            for name, count in sorted(state.webhook_backlog.items()):
                backlog.add_metric([name], count)
            yield backlog


def exposition(state: ScrapeState) -> bytes:
    """The Prometheus text exposition (:data:`CONTENT_TYPE`): this process's metrics, or every
    worker's summed in multiprocess mode, followed by the scrape-time values of ``state``."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    activate()  # registers the families in this process, whether it served a request or not
    counted: CollectorRegistry = REGISTRY
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        from prometheus_client.multiprocess import MultiProcessCollector

        counted = CollectorRegistry()
        MultiProcessCollector(counted, path=directory)  # type: ignore[no-untyped-call]
    scraped = CollectorRegistry()
    scraped.register(_ScrapeCollector(state))
    return generate_latest(counted) + generate_latest(scraped)
