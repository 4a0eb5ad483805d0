"""Log formats (``[logging] format``): one JSON object per line with the structured fields, or
text with ``key=value``; fields named like secrets are redacted in both."""

from __future__ import annotations

import json
import logging
import sys
import tomllib
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.config import Config, parse_config
from gateway.errors import ConfigError
from gateway.observability.logs import (
    REDACTED,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    fields,
)


def record(message: str = "certificate issued", /, **values: object) -> logging.LogRecord:
    rec = logging.getLogger("certgate.enrollment").makeRecord(
        "certgate.enrollment", logging.INFO, __file__, 1, message, (), None, extra=fields(**values)
    )
    rec.created = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC).timestamp()
    return rec


def test_a_json_line_carries_the_standard_keys_and_the_fields() -> None:
    line = JsonFormatter().format(record(protocol="est", serial="1a2b", request_id="r-1"))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["timestamp"] == "2026-01-02T03:04:05.678Z"
    assert (parsed["level"], parsed["logger"]) == ("INFO", "certgate.enrollment")
    assert parsed["message"] == "certificate issued"
    assert (parsed["protocol"], parsed["serial"], parsed["request_id"]) == ("est", "1a2b", "r-1")
    assert isinstance(parsed["process"], int)


def test_a_json_line_survives_odd_values_and_reserved_names() -> None:
    parsed = json.loads(
        JsonFormatter().format(
            record("a\nmultiline message", message="mine", path=Path("/x"), n=3, empty=None)
        )
    )
    assert parsed["message"] == "a\nmultiline message"
    assert parsed["field_message"] == "mine"
    assert (parsed["path"], parsed["n"]) == ("/x", 3)
    assert "empty" not in parsed


def test_a_json_line_carries_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    parsed = json.loads(JsonFormatter().format(rec))
    assert "ValueError: boom" in parsed["exception"]


@pytest.mark.parametrize(
    "name",
    ["password", "challenge_password", "otp", "private_key", "token", "Authorization", "secret"],
)
def test_fields_named_like_secrets_are_redacted(name: str) -> None:
    secret = "s3cr3t-value-42"
    rec = record(**{name: secret, "requester": "alice"})
    for line in (JsonFormatter().format(rec), TextFormatter().format(rec)):
        assert secret not in line
        assert REDACTED in line and "alice" in line


def test_text_lines_append_fields_and_quote_what_needs_it() -> None:
    line = TextFormatter().format(record(protocol="scep", subject="CN=a b,O=x", reason='say "no"'))
    assert line.endswith(
        'INFO certgate.enrollment: certificate issued protocol=scep subject="CN=a b,O=x" '
        'reason="say \\"no\\""'
    )
    assert "[" not in TextFormatter().format(record())
    assert f"[{record().process}]" in TextFormatter(process_id=True).format(record())


@pytest.mark.filterwarnings("always::DeprecationWarning")
def test_configure_logging_writes_json_lines_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("INFO", "json")
        logging.getLogger("certgate.test").info("hello", extra=fields(k="v"))
        logging.getLogger("certgate.test").debug("not at INFO")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert (lines[0]["message"], lines[0]["k"]) == ("hello", "v")
    assert lines[1]["logger"] == "py.warnings" and "deprecated thing" in lines[1]["message"]
    assert len(lines) == 2


def parse(text: str) -> Config:
    return parse_config(tomllib.loads(text), "certgate.toml", Path("/tmp"))


def test_logging_format_is_read_and_checked() -> None:
    config = parse('[logging]\nformat = "json"\n')
    assert config.log_format == "json"
    assert parse("").log_format == "text"
    with pytest.raises(ConfigError) as err:
        parse('[logging]\nformat = "xml"\n')
    assert "logging.format" in str(err.value) and "'text' or 'json'" in str(err.value)


def test_metrics_allow_is_read_and_checked() -> None:
    config = parse('[metrics]\nallow = ["10.0.0.0/8", "::1", "192.168.1.7/24"]\n')
    allow = [str(n) for n in config.metrics.allow]
    assert allow == ["10.0.0.0/8", "::1/128", "192.168.1.0/24"]
    assert parse("[metrics]\nenabled = false\n").metrics.enabled is False
    with pytest.raises(ConfigError) as err:
        parse('[metrics]\nallow = ["10.0.0.0/8", "intranet"]\n')
    assert "metrics.allow[1]" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse("[metrics]\nallowed = []\n")
    assert "metrics.allowed" in str(err.value)
