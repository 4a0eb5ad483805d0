"""The gateway and browser of the console's browser tests (test_console_browser.py) and of
its screenshots (console_screenshots.py).

The gateway is a real ``certgate serve`` (:func:`tests.gateway_process.gateway_process`) with
an HTTPS main listener (the console and the API) and EST on its own TLS port, with labels for
an approval template, the device template and a few short-lived templates (so that the
renewal chart has certificates due in the coming weeks). The browser is Debian's chromium
(``/usr/bin/chromium``, installed by ``./dev test``) driven by Playwright, which never
downloads a browser of its own here; it is told to accept the gateway's self-signed CA.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.est_helpers import Gateway, curl, openssl_req, p7_to_pem, write_est_config
from tests.gateway_process import gateway_process
from tests.helpers import TEMPLATES, certgate, free_port, init_gateway, require_tool

CHROMIUM = "/usr/bin/chromium"
PKCS10 = ("-H", "Content-Type: application/pkcs10")
DEVICE_USER = ("--user", "device-7:s3cret enough")

#: Short-lived copies of the device template: certificates due within the chart's weeks.
SHORT_LIVED = {"short-14d": ("14d", "5d"), "short-25d": ("25d", "8d"), "short-45d": ("45d", "2w")}


def require_browser() -> Any:
    """Playwright's sync API with Debian's chromium, or skip (fail under
    ``CERTGATE_REQUIRE_PEERS=1``) saying what is missing."""
    missing = []
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"{CHROMIUM} (Debian package chromium; ./dev test installs it)")
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
        missing.append("the Python package playwright (the test extra)")
    if missing:
        message = "console browser tests need " + " and ".join(missing)
        if os.environ.get("CERTGATE_REQUIRE_PEERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return sync_api


def _templates(tmp: Path) -> str:
    """EST label tables for the short-lived templates (written beside the shipped ones)."""
    device = (TEMPLATES / "device.toml").read_text()
    labels = ""
    for number, (name, (validity, renewal)) in enumerate(SHORT_LIVED.items(), start=1):
        text = (
            device.replace('name = "device"', f'name = "{name}"')
            .replace(
                'oid = "2.25.229140248001717415336070208339824134280"',
                f'oid = "2.25.4242424242424242424242424242424242{number:02d}"',
            )
            .replace('validity = "365d"', f'validity = "{validity}"')
            .replace('renewal_period = "6w"', f'renewal_period = "{renewal}"')
        )
        (tmp / "templates").mkdir(exist_ok=True)
        (tmp / "templates" / f"{name}.toml").write_text(text)
        labels += f'[est.labels.{name}]\ntemplate = "{name}"\n'
    return labels


@dataclass
class ConsoleGateway:
    """The serving gateway: its EST side (for curl), the console's base URL and tokens."""

    est: Gateway
    port: int
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def tmp(self) -> Path:
        return self.est.tmp

    def token(self, name: str, role: str) -> str:
        if name not in self.tokens:
            out = certgate(
                "admin", "token", "create", "--name", name, "--role", role,
                "-c", str(self.est.cfg), check=True,
            )  # fmt: skip
            self.tokens[name] = out.stdout.strip()
        return self.tokens[name]

    def enroll(self, name: str, label: str = "", *, expect: int = 200) -> Any:
        """``/simpleenroll`` for CN=name over curl with Basic auth; the reply."""
        csr = self.tmp / f"{name}.csr.b64"
        if not csr.exists():
            csr = openssl_req(self.tmp, name, f"/CN={name}", san=f"DNS:{name}.devices.example")
        prefix = f"/{label}" if label else ""
        reply = curl(self.est, f"{prefix}/simpleenroll", *DEVICE_USER, *PKCS10, data=csr)
        assert reply.status == expect, (reply.status, reply.body[:300])
        return reply

    def issued_pem(self, name: str, body: bytes) -> Path:
        return p7_to_pem(self.tmp, body, name)

    def fetch(self, path: str) -> bytes:
        """A GET on the main listener, trusting the gateway's CA."""
        context = ssl.create_default_context(cafile=str(self.est.ca_file))
        with urllib.request.urlopen(self.base + path, context=context, timeout=10) as r:
            return bytes(r.read())


def _https_ready(port: int, est_port: int) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/healthz", context=context, timeout=1
        ):
            pass
        with socket.create_connection(("127.0.0.1", est_port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def console_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleGateway]:
    require_tool("curl")
    require_tool("openssl")
    tmp = tmp_path_factory.mktemp("console")
    est_port = free_port()
    labels = _templates(tmp)  # write_est_config adds the shipped templates beside these
    cfg = write_est_config(
        tmp,
        est_port=est_port,
        est='retry_window = "3s"\n[est.labels.approval]\ntemplate = "approval-required"\n' + labels,
        extra='[server.tls]\nnames = ["localhost", "127.0.0.1"]\n',
    )
    init_gateway(cfg)
    certgate(
        "est", "user", "add", "device-7", "--password-env", "PW", "-c", str(cfg),
        env={"PW": "s3cret enough"}, check=True,
    )  # fmt: skip
    with gateway_process(cfg, ready=lambda port: _https_ready(port, est_port)) as process:
        est = Gateway(cfg, process.port, est_port, tmp)
        chain = _insecure_get(f"https://127.0.0.1:{process.port}/ca/chain.pem")
        (tmp / "ca-chain.pem").write_bytes(chain)  # est.ca_file: curl's and openssl's trust
        yield ConsoleGateway(est, process.port)


def _insecure_get(url: str) -> bytes:
    # Only to bootstrap trust in a gateway this test just started (its CA is new).
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, context=context, timeout=10) as r:
        return bytes(r.read())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = require_browser()
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            # The gateway's CA is made by the test: trusted by ignoring certificate errors.
            args=["--ignore-certificate-errors", "--no-sandbox"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Tab:
    """A signed-in (or not) browser page, with the CSP violations it reported."""

    page: Any
    violations: list[str]


def open_tab(browser: Any, *, width: int = 1280, height: int = 860) -> Tab:
    context = browser.new_context(
        ignore_https_errors=True, viewport={"width": width, "height": height}
    )
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: (
            violations.append(msg.text)
            if "Content Security Policy" in msg.text or "Refused to" in msg.text
            else None
        ),
    )
    page.on("pageerror", lambda exc: violations.append(f"page error: {exc}"))
    return Tab(page, violations)


def sign_in(browser: Any, gw: ConsoleGateway, token: str, **size: int) -> Tab:
    """Sign in through the sign-in page as a person would, and wait for the app shell."""
    tab = open_tab(browser, **size)
    tab.page.goto(f"{gw.base}/console/")
    tab.page.fill("#token", token)
    tab.page.click("#signin button[type=submit]")
    tab.page.locator("#whoami", has_text="(").wait_for()
    wait_loaded(tab.page)
    return tab


def wait_loaded(page: Any) -> None:
    """The current view has finished loading (no ``aria-busy`` left in it). Locators, not
    ``wait_for_function``: Playwright evaluates that with ``eval``, which the console's CSP
    refuses."""
    page.locator("#view h1").wait_for()
    page.locator("#view [aria-busy]").wait_for(state="detached")


def goto_view(page: Any, gw: ConsoleGateway, view: str) -> None:
    """Open a view by its URL fragment and wait until it has loaded (``aria-current`` on its
    link is set when it starts drawing, so the previous view cannot pass for it)."""
    page.goto(f"{gw.base}/console/#{view}")
    page.locator(f"nav a[data-view='{view}'][aria-current='page']").wait_for()
    wait_loaded(page)


def openssl(*args: str, input: bytes | None = None) -> str:
    exe = shutil.which("openssl") or require_tool("openssl")
    proc = subprocess.run([exe, *args], capture_output=True, input=input, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode(errors="replace")


def crl_serials(der: bytes) -> set[int]:
    """The serial numbers ``openssl crl -inform DER -text`` lists."""
    text = openssl("crl", "-inform", "DER", "-text", "-noout", input=der)
    return {int(s, 16) for s in re.findall(r"Serial Number:\s*([0-9A-Fa-f]+)", text)}
