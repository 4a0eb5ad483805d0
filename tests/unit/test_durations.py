"""The one duration grammar (gateway.durations): ``<integer><unit>`` with y = 365 days, a
minimum per use; templates, configuration tables and CLI options all read it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.durations import (
    MAX_DURATION,
    UNITS,
    ZERO,
    duration_option,
    format_duration,
    parse_duration,
)
from gateway.errors import BadRequest


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


@pytest.mark.parametrize("text", ["0s", "0d"])
def test_zero_passes_only_a_zero_minimum(text: str) -> None:
    assert parse_duration(text, ZERO) == timedelta(0)
    with pytest.raises(ValueError, match="zero"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["00s", "05m"])
def test_leading_zeros_are_refused_even_with_a_zero_minimum(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text, ZERO)


def test_minimum_is_named_in_the_reason() -> None:
    assert parse_duration("2s", timedelta(seconds=2)) == timedelta(seconds=2)
    with pytest.raises(ValueError, match="at least 2s"):
        parse_duration("1s", timedelta(seconds=2))


def test_cli_options_share_the_grammar_and_name_the_option() -> None:
    assert duration_option("30m", "--ttl") == timedelta(minutes=30)
    with pytest.raises(BadRequest, match=r"^--ttl: invalid duration '3600'"):
        duration_option("3600", "--ttl")
    with pytest.raises(BadRequest, match=r"^--ttl: duration '0h' is zero"):
        duration_option("0h", "--ttl")


def test_the_policy_package_re_exports_the_one_grammar() -> None:
    import gateway.policy

    assert gateway.policy.parse_duration is parse_duration
    assert gateway.policy.format_duration is format_duration
