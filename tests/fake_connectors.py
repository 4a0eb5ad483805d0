"""Connectors for failure-mode tests, loaded through the production entry-point wiring.

``JournaledLocalCA`` is the real local CA without the in-process fast path: it goes through
record -> submit -> record like a connector to an external CA (AD CS), so crash tests can stop
the process between "the CA issued" and "the outcome is stored".

Fault injection lives here, never in product code: :class:`CrashAfterSubmit` wraps a real
connector and kills the process (``os._exit(70)``) right after the CA acted -- after
``submit`` returned (a CA that records first: the request is stored ``received``, its outcome
is not), or after ``sign`` returned (an in-process CA: nothing is stored yet). The entry points
``crashing-local`` and ``crashing-journaled-local`` name it in ``[connectors.<name>] type``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from backends.local_ca import LocalCA
from gateway.model import ConnectorOutcome, Denied, IssuancePlan, Issued
from gateway.ports import CAConnector, ConnectorContext

#: The exit status of a process killed by an injected fault.
CRASH_STATUS = 70


class JournaledLocalCA(LocalCA):
    atomic_issuance = False


class CrashAfterSubmit:
    """``inner`` with a crash after every ``submit``; everything else is ``inner``'s."""

    def __init__(self, inner: CAConnector) -> None:
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)

    async def submit(self, plan: IssuancePlan) -> ConnectorOutcome:
        await self.inner.submit(plan)
        os._exit(CRASH_STATUS)  # the CA acted; the outcome is not stored


class CrashAfterSign(CrashAfterSubmit):
    """An in-process CA (``gateway.ports.InProcessSigner``) with a crash after every
    ``sign``: the certificate exists in memory only, nothing is stored."""

    atomic_issuance = True

    def sign(self, plan: IssuancePlan) -> Issued | Denied:
        self.inner.sign(plan)  # type: ignore[attr-defined]
        os._exit(CRASH_STATUS)


def crashing_local(context: ConnectorContext) -> CAConnector:
    return CrashAfterSign(LocalCA(context))


def crashing_journaled_local(context: ConnectorContext) -> CAConnector:
    return CrashAfterSubmit(JournaledLocalCA(context))


ENTRY_POINTS = {
    "journaled-local": "tests.fake_connectors:JournaledLocalCA",
    "crashing-local": "tests.fake_connectors:crashing_local",
    "crashing-journaled-local": "tests.fake_connectors:crashing_journaled_local",
}


def register_entry_points(where: Path) -> Path:
    """Write a dist-info declaring the test connectors; put ``where`` on PYTHONPATH."""
    info = where / "certgate_test_connectors-0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: certgate-test-connectors\nVersion: 0.0\n"
    )
    lines = "".join(f"{name} = {target}\n" for name, target in ENTRY_POINTS.items())
    (info / "entry_points.txt").write_text("[certgate.connectors]\n" + lines)
    return where
