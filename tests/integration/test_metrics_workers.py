"""``certgate serve --workers 2``: /metrics sums every worker's counters, so each scrape reports
every enrollment whichever worker served it and whichever answers the scrape (issue #15 item 4).
A real process (it is about processes), logging JSON lines: the worker behind each issuance and
each scrape is read from the ``process`` field of its log line."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from tests.est_helpers import write_est_config
from tests.gateway_process import gateway_process
from tests.helpers import (
    certgate,
    free_port,
    init_gateway,
)

PASSWORD = "workers-password-1"
ISSUED = {"protocol": "est", "template": "device", "outcome": "issued"}


def enroll(port: int, cn: str) -> int:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/.well-known/est/simpleenroll",
        data=base64.b64encode(csr.public_bytes(serialization.Encoding.DER)),
        headers={"Content-Type": "application/pkcs10", "Authorization": f"Basic {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:  # one connection per request
        return int(r.status)


def issued_count(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "certgate_enrollments_total" and sample.labels == ISSUED:
                return float(sample.value)
    return 0.0


def log_lines(path: Path) -> list[dict[str, Any]]:
    """Every stderr line, each of which must be one JSON object."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pids(lines: list[dict[str, Any]], test: Any) -> set[int]:
    return {line["process"] for line in lines if test(line)}


def test_two_workers_report_the_same_summed_counts(tmp_path: Path) -> None:
    cfg = write_est_config(
        tmp_path,
        est_port=free_port(),
        est='trusted_proxies = ["127.0.0.1/32"]\n',
        extra='[logging]\nformat = "json"\n',
    )
    cfg.write_text(cfg.read_text().replace("access_log = false", "access_log = true"))
    init_gateway(cfg)
    certgate(
        "est", "user", "add", "alice", "--password-env", "PW", "-c", str(cfg),
        env={"PW": PASSWORD}, check=True,
    )  # fmt: skip
    runtime = tmp_path / "tmp"
    runtime.mkdir()
    stderr = tmp_path / "stderr.log"
    with gateway_process(
        cfg, "--workers", "2", env={"TMPDIR": str(runtime)}, log=stderr, stdout_to_log=False
    ) as gateway:
        port, proc = gateway.port, gateway.proc
        assert [p.name[:17] for p in runtime.iterdir()] == ["certgate-metrics-"]
        # Enroll until both workers have issued (SO_REUSEPORT spreads new connections).
        enrolled = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert enroll(port, f"worker-test-{enrolled}") == 200
            enrolled += 1
            issuers = pids(
                log_lines(stderr),
                lambda x: x["message"] == "certificate issued" and x["requester"] == "alice",
            )
            if enrolled >= 4 and len(issuers) == 2:
                break
        assert len(issuers) == 2, "one worker served every enrollment"
        # Scrape until both workers have answered: each answer counts every enrollment.
        answers: list[float] = []
        scrapers: set[int] = set()
        while time.monotonic() < deadline and (len(scrapers) < 2 or len(answers) < 4):
            answers.append(issued_count(port))
            scrapers = pids(log_lines(stderr), lambda x: x.get("path") == "/metrics")
        assert len(scrapers) == 2, "one worker answered every scrape"
        assert answers == [enrolled] * len(answers)
    assert proc.returncode == 0, stderr.read_text()[-2000:]
    assert list(runtime.iterdir()) == []  # the run's metrics directory is removed at exit
