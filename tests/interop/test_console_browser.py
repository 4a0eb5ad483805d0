# ruff: noqa: F811  (pytest fixtures imported from tests.interop.console_fixtures)
"""The web console in a real browser (issue #16): Debian's chromium driven by Playwright against
a real gateway (HTTPS main listener, EST on its own TLS port), with curl + openssl as the EST
device and the relying party reading the CRL.

One gateway for the module (:mod:`tests.interop.console_fixtures`); each test signs in with its
own browser context. Every page the tests open also collects the Content-Security-Policy
violations chromium reports: the console must work under its own policy, with none.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gateway.server.console import CONTENT_SECURITY_POLICY
from tests.interop.console_fixtures import (
    ConsoleGateway,
    browser,  # noqa: F401
    console_gateway,  # noqa: F401
    crl_serials,
    goto_view,
    open_tab,
    openssl,
    sign_in,
)
from tests.interop.console_screenshots import VIEWS, take_screenshots


def _card(tab: Any, subject: str) -> Any:
    return tab.page.locator("article[data-request-id]", has_text=subject)


def _pending_request(gw: ConsoleGateway, name: str) -> Path:
    """An EST device asks under the approval template: 202 + Retry-After (pending)."""
    reply = gw.enroll(name, "approval", expect=202)
    assert reply.header("retry-after") is not None and int(reply.header("retry-after")) > 0
    return gw.tmp / f"{name}.csr.b64"


def test_an_approver_approves_a_pending_est_request_and_the_device_gets_its_certificate(
    console_gateway: ConsoleGateway, browser: Any
) -> None:
    gw = console_gateway
    _pending_request(gw, "sensor-approve-me")
    gw.enroll("sensor-approve-me", "approval", expect=202)  # still waiting before approval

    tab = sign_in(browser, gw, gw.token("alice", "approver"))
    card = _card(tab, "CN=sensor-approve-me")
    card.wait_for()
    details = card.inner_text()
    for shown in ("sensor-approve-me.devices.example", "EC", "device-7", "est",
                  "approval-required", "manager approval"):  # fmt: skip
        assert shown.lower() in details.lower(), (shown, details)
    card.locator("input[name=reason]").fill("serial number checked against the delivery note")
    card.locator("button[data-action=approve]").click()
    tab.page.locator("#notice").filter(has_text="approved").wait_for()
    assert tab.violations == []

    # The device retries with the same CSR and the same credentials, and is answered.
    reply = gw.enroll("sensor-approve-me", "approval", expect=200)
    pem = gw.issued_pem("sensor-approve-me", reply.body)
    assert openssl("verify", "-CAfile", str(gw.est.ca_file), str(pem)).strip().endswith("OK")
    subject = openssl("x509", "-in", str(pem), "-noout", "-subject")
    assert "sensor-approve-me" in subject

    # The audit trail names the token and keeps the reason.
    goto_view(tab.page, gw, "audit")
    tab.page.fill("input[name=actor]", "token:alice")
    tab.page.click("form[role=search] button[type=submit]")
    tab.page.locator("td", has_text="delivery note").first.wait_for()


def test_a_denial_needs_a_reason_and_the_device_is_then_refused(
    console_gateway: ConsoleGateway, browser: Any
) -> None:
    gw = console_gateway
    _pending_request(gw, "unknown-laptop")
    tab = sign_in(browser, gw, gw.token("alice", "approver"))
    card = _card(tab, "CN=unknown-laptop")
    card.locator("button[data-action=deny]").click()
    card.locator("p.error", has_text="reason is required").wait_for()
    card.locator("input[name=reason]").fill("not one of ours")
    card.locator("button[data-action=deny]").click()
    tab.page.locator("#notice").filter(has_text="denied").wait_for()
    assert _card(tab, "CN=unknown-laptop").count() == 0
    gw.enroll("unknown-laptop", "approval", expect=403)  # the device's retry: denied
    assert tab.violations == []


def test_the_queue_works_from_the_keyboard(console_gateway: ConsoleGateway, browser: Any) -> None:
    gw = console_gateway
    _pending_request(gw, "keyboard-only")
    tab = open_tab(browser)
    page = tab.page
    page.goto(f"{gw.base}/console/")
    page.keyboard.type(gw.token("alice", "approver"))  # the token field has the focus
    page.keyboard.press("Enter")
    card = _card(tab, "CN=keyboard-only")
    card.wait_for()
    reason = card.locator("input[name=reason]")
    for _ in range(60):  # Tab until the card's reason field has the focus
        page.keyboard.press("Tab")
        if reason.evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the reason field")
    page.keyboard.type("asked for by the help desk")
    page.keyboard.press("Tab")  # -> Approve
    page.keyboard.press("Enter")
    page.locator("#notice").filter(has_text="approved").wait_for()
    gw.enroll("keyboard-only", "approval", expect=200)
    assert tab.violations == []


def test_no_view_is_wider_than_a_phone(console_gateway: ConsoleGateway, browser: Any) -> None:
    gw = console_gateway
    gw.enroll("phone-check")
    tab = sign_in(browser, gw, gw.token("alice", "approver"), width=390, height=844)
    for view in VIEWS:
        goto_view(tab.page, gw, view)
        width = tab.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, (view, width)  # wide tables scroll inside their own box
    assert tab.violations == []


def test_revoking_in_the_browser_puts_the_serial_on_the_crl(
    console_gateway: ConsoleGateway, browser: Any
) -> None:
    gw = console_gateway
    pem = gw.issued_pem("door-controller", gw.enroll("door-controller").body)
    serial = openssl("x509", "-in", str(pem), "-noout", "-serial").strip().split("=")[1]
    serial_hex = format(int(serial, 16), "x")
    assert int(serial, 16) not in crl_serials(gw.fetch("/ca/crl"))

    tab = sign_in(browser, gw, gw.token("alice", "approver"))
    goto_view(tab.page, gw, "inventory")
    tab.page.fill("input[name=serial]", serial_hex)
    # The unfiltered list may already show the row; the search then replaces every row. Wait
    # for the search's answer, or the revoke form opened on the old row vanishes with it.
    searched = f"serial={serial_hex}"
    with tab.page.expect_response(lambda r: "/certificates" in r.url and searched in r.url):
        tab.page.click("form[role=search] button[type=submit]")
    row = tab.page.locator(f"tr[data-serial='{serial_hex}']")
    row.locator("button[data-action=revoke]").click()
    row.locator("select[name=reason]").select_option("keyCompromise")
    row.locator("button[type=submit]").click()
    tab.page.locator("#notice").filter(has_text="revoked").wait_for()
    assert tab.violations == []

    der = gw.fetch("/ca/crl")
    assert int(serial, 16) in crl_serials(der)
    text = openssl("crl", "-inform", "DER", "-text", "-noout", input=der)
    assert "Key Compromise" in text


def test_a_viewer_sees_the_queue_but_cannot_approve(
    console_gateway: ConsoleGateway, browser: Any
) -> None:
    gw = console_gateway
    _pending_request(gw, "kiosk-waits")
    tab = sign_in(browser, gw, gw.token("victor", "viewer"))
    assert "victor (viewer)" in tab.page.inner_text("#whoami")
    card = _card(tab, "CN=kiosk-waits")
    card.wait_for()
    assert card.locator("button[data-action=approve]").is_disabled()
    assert card.locator("button[data-action=deny]").is_disabled()
    assert "needs the approver role" in card.inner_text()
    # Even with the CSRF header, the API refuses a viewer's approval.
    request_id = card.get_attribute("data-request-id")
    status = tab.page.evaluate(
        """async (id) => {
             const who = await (await fetch('/api/v1/whoami')).json();
             const r = await fetch(`/api/v1/requests/${id}/approve`, {method: 'POST',
               headers: {'X-CSRF-Token': who.csrf, 'Content-Type': 'application/json'},
               body: '{}'});
             return r.status;
           }""",
        request_id,
    )
    assert status == 403
    assert tab.violations == []


def test_a_bad_token_is_refused_at_sign_in(console_gateway: ConsoleGateway, browser: Any) -> None:
    gw = console_gateway
    tab = open_tab(browser)
    tab.page.goto(f"{gw.base}/console/")
    tab.page.fill("#token", "cg_" + "A" * 43)
    tab.page.click("#signin button[type=submit]")
    error = tab.page.locator("#signin-error")
    error.wait_for()
    assert "not accepted" in error.inner_text()
    assert [c for c in tab.page.context.cookies() if c["name"] == "certgate_console"] == []
    assert tab.violations == []


def test_sign_out_ends_the_session(console_gateway: ConsoleGateway, browser: Any) -> None:
    gw = console_gateway
    tab = sign_in(browser, gw, gw.token("alice", "approver"))
    tab.page.click("#signout")
    tab.page.locator("#signin").wait_for()
    assert [c for c in tab.page.context.cookies() if c["name"] == "certgate_console"] == []
    status = tab.page.evaluate("async () => (await fetch('/api/v1/whoami')).status")
    assert status == 401


def test_the_console_is_served_with_a_strict_csp_and_no_inline_script(
    console_gateway: ConsoleGateway, browser: Any
) -> None:
    gw = console_gateway
    tab = sign_in(browser, gw, gw.token("alice", "approver"))
    response = tab.page.goto(f"{gw.base}/console/")
    headers = response.all_headers()
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    html = response.text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S | re.I)
    assert scripts and all('src="/console/static/' in attrs and not body.strip()
                           for attrs, body in scripts)  # fmt: skip
    assert not re.search(r"\son[a-z]+\s*=|\sstyle\s*=|<style", html, flags=re.I)
    cookie = next(c for c in tab.page.context.cookies() if c["name"] == "certgate_console")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert tab.page.evaluate("document.cookie") == ""  # script never sees the token


def test_a_cookie_authenticated_post_without_the_csrf_header_is_refused(
    console_gateway: ConsoleGateway, browser: Any
) -> None:
    gw = console_gateway
    _pending_request(gw, "printer-csrf")
    tab = sign_in(browser, gw, gw.token("alice", "approver"))
    card = _card(tab, "CN=printer-csrf")
    card.wait_for()
    request_id = card.get_attribute("data-request-id")
    answers = tab.page.evaluate(
        """async (id) => {
             const post = (headers) => fetch(`/api/v1/requests/${id}/approve`, {method: 'POST',
               headers: {'Content-Type': 'application/json', ...headers}, body: '{}'});
             const none = await post({});
             const wrong = await post({'X-CSRF-Token': '00'.repeat(32)});
             const state = (await (await fetch(`/api/v1/requests/${id}`)).json()).state;
             return [none.status, wrong.status, state];
           }""",
        request_id,
    )
    assert answers == [403, 403, "pending"]


def test_screenshots_of_every_view(
    console_gateway: ConsoleGateway, browser: Any, tmp_path: Path
) -> None:
    gw = console_gateway
    for name in ("fleet-a1", "fleet-a2", "fleet-b1"):
        gw.enroll(name, "short-14d")
    for name in ("camera-3", "camera-4"):
        gw.enroll(name, "short-25d")
    for name in ("gateway-9", "badge-reader", "hvac-2", "lift-1"):
        gw.enroll(name, "short-45d")
    _pending_request(gw, "pos-terminal-12")
    written = take_screenshots(browser, gw, tmp_path)
    assert sorted(p.stem for p in written) == sorted([*VIEWS, "queue-phone"])
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    # The chart has a bar per week and the figures behind it.
    tab = sign_in(browser, gw, gw.token("alice", "approver"))
    goto_view(tab.page, gw, "renewals")
    assert tab.page.locator("svg.chart rect.bar").count() == 8
    weeks = json.loads(tab.page.evaluate(
        "async () => JSON.stringify(await (await fetch('/api/v1/certificates/expiring')).json())"
    ))["items"]  # fmt: skip
    assert sum(w["count"] for w in weeks) >= 5
    assert tab.violations == []
