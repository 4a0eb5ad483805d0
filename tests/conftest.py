"""Suite-wide fixtures.

Tests that run the CLI's ``main(argv)`` or a serving process's set-up in-process configure
logging for the whole interpreter (``logging.basicConfig`` on the root logger, levels,
``captureWarnings``). Left in place, a later test would see handlers writing to a closed
capture stream, or records emitted twice. Each test therefore gets back the logging state it
started with.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import logging_state_restored


@pytest.fixture(autouse=True)
def _restore_logging_state() -> Iterator[None]:
    with logging_state_restored():
        yield


INTEROP_DIR = Path(__file__).resolve().parent / "interop"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/interop drives a real third-party client or server: it is
    ``interop`` even in a new module that forgot its ``pytestmark`` (``-m "not interop"``
    must leave none of them behind)."""
    for item in items:
        if item.path.is_relative_to(INTEROP_DIR) and item.get_closest_marker("interop") is None:
            item.add_marker(pytest.mark.interop)
