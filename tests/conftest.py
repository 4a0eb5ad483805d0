"""Suite-wide fixtures.

Tests that run the CLI's ``main(argv)`` or a serving process's set-up in-process configure
logging for the whole interpreter (``logging.basicConfig`` on the root logger, levels,
``captureWarnings``). Left in place, a later test would see handlers writing to a closed
capture stream, or records emitted twice. Each test therefore gets back the logging state it
started with.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_logging_state() -> Iterator[None]:
    manager = logging.Logger.manager
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level, root.disabled)
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
        for name, lg in manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    saved_disable = manager.disable
    yield
    logging.captureWarnings(False)
    root.handlers[:], root.level, root.disabled = saved_root
    for name, lg in list(manager.loggerDict.items()):
        if not isinstance(lg, logging.Logger):
            continue
        if name in saved:
            lg.handlers[:], lg.level, lg.propagate, lg.disabled = saved[name]
        else:
            lg.handlers[:] = []
            lg.setLevel(logging.NOTSET)
            lg.propagate, lg.disabled = True, False
    logging.disable(saved_disable)
