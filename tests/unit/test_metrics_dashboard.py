"""docs/grafana-dashboard.json draws only metrics certgate exposes, with their own suffixes
(counters ``_total``, histograms ``_bucket``), through the dashboard's data source variable."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from gateway.observability.metrics import CertificateExpiry, ScrapeState, activate, exposition
from tests.helpers import REPO

DASHBOARD = REPO / "docs" / "grafana-dashboard.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exposed_series() -> set[str]:
    metrics = activate()
    names: set[str] = set()
    for attribute, metric in vars(metrics).items():
        if attribute.startswith("_"):
            continue
        for family in metric.describe():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    now = datetime.now(UTC)
    state = ScrapeState(
        now=now,
        pending={("approval", "t"): 1},
        certificates=(CertificateExpiry("ca", "local", "issuing", now + timedelta(days=1)),),
    )
    for family in text_string_to_metric_families(exposition(state).decode()):
        names.update(sample.name for sample in family.samples)
    return names


def targets() -> list[dict[str, object]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t for panel in dashboard["panels"] for t in panel.get("targets", [])]


def test_every_series_the_dashboard_queries_is_exposed() -> None:
    exposed = exposed_series()
    queried = {
        name for t in targets() for name in re.findall(r"\bcertgate_[a-z_]+", str(t["expr"]))
    }
    assert queried, "the dashboard queries no certgate metric"
    assert queried <= exposed, sorted(queried - exposed)
    families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in queried}
    assert {
        "certgate_enrollments",
        "certgate_denials",
        "certgate_pending_requests",
        "certgate_connector_calls",
        "certgate_http_request_duration_seconds",
        "certgate_certificate_expiry_seconds",
    } <= families


def test_panels_use_the_data_source_variable_and_unique_ids() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(t["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for t in targets())
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "instance"}
