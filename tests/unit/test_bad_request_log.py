"""The quiet bad-request log (issue #12 item 14): one line per interval, without the raw
bytes aiohttp quotes, counting the lines it left out; other records untouched."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import BadHttpMessage, BadStatusLine

from gateway.server.listen import BadRequestLog, bad_request_reason

RAW = "Invalid header value char:\n\n  b'Authorization: Basic c2VjcmV0\\x01'\n       ^"


def _record(exc: BaseException | None, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(
        "aiohttp.server",
        level,
        __file__,
        1,
        "Error handling request from %s",
        ("192.0.2.7",),
        (type(exc), exc, None) if exc else None,
    )


def test_one_line_per_interval_counting_the_suppressed() -> None:
    now = [100.0]
    quiet = BadRequestLog(interval=10, clock=lambda: now[0])
    first = _record(BadHttpMessage(RAW))
    assert quiet.filter(first)
    assert (
        first.getMessage()
        == "bad request from 192.0.2.7: BadHttpMessage: Invalid header value char"
    )
    assert first.exc_info is None and first.levelno == logging.WARNING
    now[0] = 105.0
    assert not quiet.filter(_record(BadHttpMessage(RAW)))
    assert not quiet.filter(_record(BadHttpMessage(RAW)))
    now[0] = 110.5
    later = _record(BadHttpMessage(RAW))
    assert quiet.filter(later)
    assert later.getMessage().endswith("(2 more since the last line)")
    now[0] = 121.0
    again = _record(BadHttpMessage(RAW))
    assert quiet.filter(again) and "more since" not in again.getMessage()


def test_a_quoted_reason_is_dropped_not_logged() -> None:
    reason = bad_request_reason(BadStatusLine("GET /?token=s3cr3t HTTP/1.1"))
    assert reason == "BadStatusLine" and "s3cr3t" not in reason


def test_other_records_pass_untouched() -> None:
    quiet = BadRequestLog(interval=10, clock=lambda: 0.0)
    plain = _record(None)
    assert quiet.filter(plain) and plain.getMessage() == "Error handling request from 192.0.2.7"
    crash = _record(RuntimeError("bug"))
    assert quiet.filter(crash) and crash.exc_info is not None and crash.levelno == logging.ERROR


def test_a_debug_record_stays_debug() -> None:
    record = _record(BadHttpMessage(RAW), level=logging.DEBUG)
    assert BadRequestLog(clock=lambda: 0.0).filter(record) and record.levelno == logging.DEBUG
