"""Template durations: ``<integer><unit>`` with y = 365 days."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.policy import format_duration, parse_duration
from gateway.policy.durations import MAX_DURATION, UNITS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("6w", timedelta(weeks=6)),
        ("1y", timedelta(days=365)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_each_unit_parses(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "0d", "-1d", "1.5d", "90 d", " 90d", "90D", "1mo"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_over_a_century_are_refused() -> None:
    with pytest.raises(ValueError, match="100 years"):
        parse_duration("101y")


def test_format_uses_the_largest_exact_unit() -> None:
    assert [format_duration(timedelta(days=d)) for d in (365, 42, 90)] == ["1y", "6w", "90d"]


def test_format_refuses_fractions_of_a_second() -> None:
    with pytest.raises(ValueError):
        format_duration(timedelta(milliseconds=1500))


@given(st.integers(min_value=1, max_value=int(MAX_DURATION.total_seconds())))
def test_format_then_parse_is_the_identity(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@given(st.integers(min_value=1, max_value=100), st.sampled_from(sorted(UNITS)))
def test_parse_then_format_then_parse_is_stable(count: int, unit: str) -> None:
    text = f"{count}{unit}"
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@given(st.text(max_size=12))
def test_arbitrary_text_parses_or_raises_value_error(text: str) -> None:
    try:
        assert parse_duration(text) > timedelta(0)
    except ValueError:
        pass
