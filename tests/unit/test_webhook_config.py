"""``[webhooks]`` configuration: receivers, their checks, and one-line errors naming the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cr3t-value")


def _parse(webhooks: dict[str, Any], tmp_path: Path) -> Any:
    return parse_config({"webhooks": webhooks}, str(tmp_path / "certgate.toml"), tmp_path)


def _hook(**overrides: Any) -> dict[str, Any]:
    hook: dict[str, Any] = {
        "url": "https://hooks.example.net/certgate",
        "secret": "env:HOOK_SECRET",
        "events": ["certificate.issued", "certificate.due"],
    }
    hook.update(overrides)
    return hook


def test_a_receiver_is_read_with_its_defaults(tmp_path: Path) -> None:
    config = _parse({"siem": _hook()}, tmp_path).webhooks
    hook = config.receivers["siem"]
    assert hook.url == "https://hooks.example.net/certgate"
    assert hook.secret == "s3cr3t-value"
    assert hook.events == {"certificate.issued", "certificate.due"}
    assert (hook.timeout, hook.max_age) == (timedelta(seconds=10), timedelta(days=3))
    assert (config.poll_interval, config.due_interval) == (timedelta(seconds=1), timedelta(hours=1))


def test_no_table_means_no_receiver(tmp_path: Path) -> None:
    assert dict(_parse({}, tmp_path).webhooks.receivers) == {}


def test_the_secret_stays_out_of_repr(tmp_path: Path) -> None:
    config = _parse({"siem": _hook()}, tmp_path)
    assert "s3cr3t-value" not in repr(config)


def test_a_secret_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "hook.secret").write_text("from-a-file\n")
    hook = _parse({"siem": _hook(secret="file:hook.secret")}, tmp_path).webhooks.receivers["siem"]
    assert hook.secret == "from-a-file"


def test_plain_http_is_allowed_to_loopback_only(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:9000/x", "http://localhost/x", "http://[::1]:80/x"):
        assert _parse({"h": _hook(url=url)}, tmp_path).webhooks.receivers["h"].url == url


@pytest.mark.parametrize(
    ("webhooks", "key", "reason"),
    [
        ({"h": _hook(url="http://hooks.example.net/")}, "webhooks.h.url", "must be https"),
        ({"h": _hook(url="ftp://x/")}, "webhooks.h.url", "not an absolute http(s) URL"),
        ({"h": _hook(url="https://u:p@x/")}, "webhooks.h.url", "credentials"),
        ({"h": _hook(secret="inline")}, "webhooks.h.secret", "'env:VARIABLE' or 'file:PATH'"),
        ({"h": _hook(secret="env:NOT_SET_ANYWHERE")}, "webhooks.h.secret", "is not set"),
        (
            {"h": {k: v for k, v in _hook().items() if k != "secret"}},
            "webhooks.h.secret",
            "missing",
        ),
        ({"h": _hook(events=["certificate.expired"])}, "webhooks.h.events[0]", "is not one of"),
        ({"h": _hook(events=[])}, "webhooks.h.events", "at least one event"),
        ({"h": _hook(timeout=10)}, "webhooks.h.timeout", "a bare number"),
        ({"h": _hook(timeout="1h")}, "webhooks.h.timeout", "at most 5m"),
        ({"h": _hook(max_age="10s")}, "webhooks.h.max_age", "at least"),
        ({"h": _hook(retries=3)}, "webhooks.h.retries", "unknown key"),
        ({"bad name": _hook()}, "webhooks.bad name", "a webhook name"),
        ({"poll_intervall": "1s"}, "webhooks.poll_intervall", "unknown key"),
        ({"retry_cap": "forever"}, "webhooks.retry_cap", "invalid duration"),
    ],
)
def test_errors_name_the_key(
    tmp_path: Path, webhooks: dict[str, Any], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(webhooks, tmp_path)
    message = str(caught.value)
    assert f": {key}: " in message and reason in message and "\n" not in message
    assert "s3cr3t-value" not in message
