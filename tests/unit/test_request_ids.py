"""Request ids are UUIDv7 (RFC 9562 §5.7): unique, and ordered by creation time."""

from __future__ import annotations

import time
import uuid

from gateway.model import new_request_id


def test_request_ids_are_version_7_uuids_and_unique() -> None:
    ids = [new_request_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:50]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_request_ids_carry_the_creation_millisecond_and_sort_by_it() -> None:
    before = time.time_ns() // 1_000_000
    first = new_request_id()
    time.sleep(0.003)
    second = new_request_id()
    after = time.time_ns() // 1_000_000
    stamp = uuid.UUID(first).int >> 80
    assert before <= stamp <= after
    assert first < second  # later milliseconds sort later, as text too
