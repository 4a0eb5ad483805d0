"""Log output: the text format, and ``[logging] format = "json"`` (one JSON object per line).

A log call carries structured fields with ``extra=fields(...)``. The text format appends them
to the message as ``key=value``; the JSON format writes them beside ``timestamp``, ``level``,
``logger`` and ``message``, so a log shipper indexes them without parsing prose.

Secrets never reach a log line: certgate logs no password, challenge, one-time code, token or
private key, and as a second line of defence a field whose name says it holds one
(:data:`SECRET_WORDS`) is written as ``[redacted]`` whatever its value.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "FIELDS_ATTR",
    "JSON",
    "LOG_FORMATS",
    "SECRET_WORDS",
    "TEXT",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "fields",
]

TEXT = "text"
JSON = "json"
LOG_FORMATS = (TEXT, JSON)

#: The LogRecord attribute that holds a call's structured fields.
FIELDS_ATTR = "certgate_fields"
#: A field whose lower-cased name contains one of these is redacted.
SECRET_WORDS = (
    "password",
    "passphrase",
    "secret",
    "token",
    "challenge",
    "otp",
    "private",
    "authorization",
    "credential",
    "cookie",
)
REDACTED = "[redacted]"
#: Keys of every JSON line; a field of the same name is written as ``field_<name>``.
_RESERVED = frozenset({"timestamp", "level", "logger", "message", "process", "exception"})


def fields(**values: object) -> dict[str, Any]:
    """``extra=`` for a log call with structured ``values`` (``None`` values are left out)."""
    return {FIELDS_ATTR: {k: v for k, v in values.items() if v is not None}}


@functools.lru_cache(maxsize=512)  # field names are few; this runs for every field of a line
def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def _fields_of(record: logging.LogRecord) -> dict[str, Any]:
    values = getattr(record, FIELDS_ATTR, None)
    if not isinstance(values, dict):
        return {}
    return {k: REDACTED if _is_secret(k) else v for k, v in values.items()}


_NEEDS_QUOTES = re.compile(r'[\s"=\\]')


def _text_value(value: object) -> str:
    text = str(value)
    if not text or _NEEDS_QUOTES.search(text):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """``2026-01-02 03:04:05,678 INFO certgate.enrollment: certificate issued protocol=est ...``;
    with ``process_id`` the logger name is followed by ``[pid]`` (``serve --workers N``)."""

    def __init__(self, *, process_id: bool = False) -> None:
        name = "%(name)s[%(process)d]" if process_id else "%(name)s"
        super().__init__(f"%(asctime)s %(levelname)s {name}: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extra = _fields_of(record)
        if not extra:
            return line
        return line + " " + " ".join(f"{k}={_text_value(v)}" for k, v in extra.items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``timestamp`` (RFC 3339, UTC, milliseconds), ``level``,
    ``logger``, ``message``, ``process``, the call's fields, and ``exception`` (the formatted
    traceback) when there is one. Values that are not JSON types are written as strings."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "timestamp": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in _fields_of(record).items():
            line[f"field_{key}" if key in _RESERVED else key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(log_format: str, *, process_id: bool = False) -> logging.Formatter:
    """The formatter for ``[logging] format``."""
    if log_format == JSON:
        return JsonFormatter()
    return TextFormatter(process_id=process_id)


def configure_logging(level: str, log_format: str = TEXT, *, process_id: bool = False) -> None:
    """Send the process's log records to stderr at ``level`` in ``log_format``, replacing
    any handler configured before (the CLI's default one): a serving process calls this once
    it has read ``[logging]``."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format, process_id=process_id))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)  # warnings too become lines of this format, not raw stderr
