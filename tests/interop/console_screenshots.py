"""Screenshots of the console's views for docs/console.md, taken by test_console_browser.py.

They go into the test's temporary directory, or into ``docs/console/`` when
``CERTGATE_UPDATE_SCREENSHOTS=1`` (so that an ordinary test run never rewrites the
committed images): ``CERTGATE_UPDATE_SCREENSHOTS=1 .venv/bin/pytest -n 0
tests/interop/test_console_browser.py -k screenshots``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.helpers import REPO
from tests.interop.console_fixtures import ConsoleGateway, goto_view, sign_in

DOCS = REPO / "docs" / "console"
#: The views by URL fragment, in the order the navigation shows them.
VIEWS = ("queue", "inventory", "audit", "renewals", "status")


def output_dir(default: Path) -> Path:
    if os.environ.get("CERTGATE_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return default


def take_screenshots(browser: Any, gw: ConsoleGateway, default: Path) -> list[Path]:
    """A PNG per view at 1280 px, and the queue at a phone's width (390 px)."""
    out = output_dir(default)
    written = []
    tab = sign_in(browser, gw, gw.token("alice", "approver"))
    page = tab.page
    for view in VIEWS:
        goto_view(page, gw, view)
        if view == "renewals":
            page.select_option("select[name=weeks]", "8")
            page.locator("svg.chart rect.bar").first.wait_for(state="attached")
        page.locator("#view").focus()  # no stray focus ring on the navigation
        path = out / f"{view}.png"
        # The whole page, but the audit trail (a long table) only as far as the window shows.
        page.screenshot(path=str(path), full_page=view != "audit")
        written.append(path)
    phone = sign_in(browser, gw, gw.token("alice", "approver"), width=390, height=844)
    path = out / "queue-phone.png"
    phone.page.screenshot(path=str(path), full_page=True)
    written.append(path)
    assert tab.violations == [] and phone.violations == []
    return written
