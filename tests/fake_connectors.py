"""Connectors for failure-mode tests, loaded through the production entry-point wiring.

``JournaledLocalCA`` is the real local CA without the in-process fast path: it goes through
record -> submit -> record like a connector to an external CA (AD CS), so crash tests can stop
the process between "the CA issued" and "the outcome is stored".
"""

from __future__ import annotations

from pathlib import Path

from backends.local_ca import LocalCA


class JournaledLocalCA(LocalCA):
    atomic_issuance = False


def register_entry_points(where: Path) -> Path:
    """Write a dist-info declaring the test connectors; put ``where`` on PYTHONPATH."""
    info = where / "certgate_test_connectors-0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: certgate-test-connectors\nVersion: 0.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[certgate.connectors]\njournaled-local = tests.fake_connectors:JournaledLocalCA\n"
    )
    return where
