"""Suite-wide fixtures.

Tests that run the CLI's ``main(argv)`` or a serving process's set-up in-process configure
logging for the whole interpreter (``logging.basicConfig`` on the root logger, levels,
``captureWarnings``). Left in place, a later test would see handlers writing to a closed
capture stream, or records emitted twice. Each test therefore gets back the logging state it
started with.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import logging_state_restored


@pytest.fixture(autouse=True)
def _restore_logging_state() -> Iterator[None]:
    with logging_state_restored():
        yield
