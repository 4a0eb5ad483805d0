"""``[webhooks]``: event notifications delivered from the database outbox (issue #16 item 4).

One sub-table per receiver, ``[webhooks.<name>]``: ``url`` (https, or http to a loopback
host), ``secret`` (by reference: ``env:`` / ``file:``, never inline), ``events`` (a list of
:data:`WEBHOOK_EVENTS`), optional ``timeout`` (per attempt) and ``max_age`` (give up after).
Beside them, scalar keys of ``[webhooks]`` tune the background task for every receiver:
``poll_interval``, ``due_interval`` (how often the inventory is checked for certificates
entering their renewal window) and ``retry_cap`` (longest wait between two attempts).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from urllib.parse import urlsplit

from gateway.toml_reader import Table

__all__ = ["WEBHOOK_EVENTS", "WebhookConfig", "WebhooksConfig", "parse_webhooks"]

#: The events a receiver can subscribe to.
WEBHOOK_EVENTS = (
    "request.pending",
    "certificate.issued",
    "request.denied",
    "certificate.revoked",
    "certificate.due",
)
#: A receiver's name: what the outbox rows, the metrics and the log lines name it by.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SETTINGS = ("poll_interval", "due_interval", "retry_cap")
_KEYS = ("url", "secret", "events", "timeout", "max_age")


@dataclass(frozen=True)
class WebhookConfig:
    """One receiver. ``secret`` is the resolved HMAC key text (kept out of ``repr``)."""

    name: str
    url: str
    secret: str = field(repr=False)
    events: frozenset[str]
    timeout: timedelta = timedelta(seconds=10)
    max_age: timedelta = timedelta(days=3)


@dataclass(frozen=True)
class WebhooksConfig:
    """``[webhooks]``: the receivers by name and the background task's tuning."""

    receivers: Mapping[str, WebhookConfig] = field(default_factory=lambda: MappingProxyType({}))
    poll_interval: timedelta = timedelta(seconds=1)
    due_interval: timedelta = timedelta(hours=1)
    retry_cap: timedelta = timedelta(hours=1)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(t: Table) -> str:
    url = t.str("url")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        t.fail("url", f"{url!r} is not an absolute http(s) URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        t.fail("url", "must be https (plain http only to a loopback host)")
    if parts.username or parts.password:
        t.fail("url", "must not carry credentials: the receiver checks the signature")
    return url


def _receiver(t: Table, name: str, resolve: Callable[[object, str, str], str]) -> WebhookConfig:
    if not NAME_PATTERN.fullmatch(name):
        t.fail("", "a webhook name is 1-64 letters, digits, '_' or '-'")
    url = _url(t)
    secret_ref = t.raw("secret")
    if secret_ref is None:
        t.fail("secret", "required key is missing (give it as 'env:VARIABLE' or 'file:PATH')")
    secret = resolve(secret_ref, t.file, t.key("secret"))
    if not secret:
        t.fail("secret", "the secret is empty")
    events: set[str] = set()
    for key, event in t.str_items("events", None):
        if event not in WEBHOOK_EVENTS:
            t.fail(key, f"{event!r} is not one of {', '.join(WEBHOOK_EVENTS)}")
        events.add(event)
    if not events:
        t.fail("events", "subscribe to at least one event")
    timeout = t.duration("timeout", "10s")
    if timeout > timedelta(minutes=5):
        t.fail("timeout", "must be at most 5m")
    max_age = t.duration("max_age", "3d", minimum=timedelta(minutes=1))
    t.finish()
    return WebhookConfig(name, url, secret, frozenset(events), timeout, max_age)


def parse_webhooks(t: Table, resolve: Callable[[object, str, str], str]) -> WebhooksConfig:
    """Validate ``[webhooks]``; ``resolve`` is :func:`gateway.config.resolve_secret`."""
    receivers: dict[str, WebhookConfig] = {}
    for name in t.keys():
        if name in _SETTINGS:
            continue
        if not isinstance(t.data[name], Mapping):
            t.fail(
                name, f"unknown key (settings: {', '.join(_SETTINGS)}; or a [webhooks.NAME] table)"
            )
        receivers[name] = _receiver(t.table(name, _KEYS), name, resolve)
    return WebhooksConfig(
        receivers=MappingProxyType(receivers),
        poll_interval=t.duration("poll_interval", "1s"),
        due_interval=t.duration("due_interval", "1h"),
        retry_cap=t.duration("retry_cap", "1h"),
    )
