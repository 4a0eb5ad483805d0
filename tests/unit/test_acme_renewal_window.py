"""The renewalInfo suggested window (RFC 9773 §4.2): it opens at the template's renewal rule
and ends well before notAfter, a day long or more whenever the renewal overlap allows, so a
client that runs once a day cannot miss it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy.loader import load_templates
from gateway.policy.renewal import renewal_window
from protocols.acme.renewal_info import suggested_window
from tests.helpers import TEMPLATES

DAY = timedelta(days=1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _templates_by_validity() -> list[str]:
    templates = load_templates(TEMPLATES)
    ordered = sorted(templates.values(), key=lambda t: t.validity)
    return [ordered[0].name, ordered[-1].name]


@pytest.mark.parametrize("name", _templates_by_validity())
def test_shortest_and_longest_template_validity(name: str) -> None:
    """Certificates of the shipped templates with the shortest and the longest validity:
    the start is the template rule, the end leaves a third of the overlap for retries."""
    template = load_templates(TEMPLATES)[name]
    not_after = T0 + template.validity
    rule_start, rule_end = renewal_window(T0, not_after, template)
    start, end = suggested_window(rule_start, not_after)
    overlap = not_after - rule_start
    assert start == rule_start and rule_end == not_after
    assert end == not_after - overlap / 3
    assert end - start >= DAY


def test_a_week_long_certificate_still_gives_a_daily_client_a_whole_day() -> None:
    # 7 days, overlap 20 % = 33.6 h: the window is exactly one day, 9.6 h kept before expiry.
    start, end = suggested_window(T0 + timedelta(hours=134.4), T0 + timedelta(days=7))
    assert end - start == DAY
    assert T0 + timedelta(days=7) - end == timedelta(hours=9.6)


def test_a_certificate_shorter_than_a_daily_cycle_keeps_a_quarter_in_reserve() -> None:
    # 1 day, overlap 4.8 h: no daily client can be served; 3.6 h window, 1.2 h reserve.
    start, end = suggested_window(T0 + timedelta(hours=19.2), T0 + DAY)
    assert end - start == timedelta(hours=3.6)


@settings(max_examples=300, deadline=None)
@given(
    lifetime_hours=st.integers(1, 5 * 365 * 24),
    period_fraction=st.floats(0.01, 0.99),
    phase_minutes=st.integers(0, 24 * 60 - 1),
)
def test_every_daily_client_lands_in_the_window_when_the_overlap_allows(
    lifetime_hours: int, period_fraction: float, phase_minutes: int
) -> None:
    """For any lifetime and renewal period: end is after start and at least a quarter of the
    overlap before notAfter, and when the overlap is 32 h or more, a client running once a
    day at any time of day runs inside the window at least once."""
    not_after = T0 + timedelta(hours=lifetime_hours)
    overlap = min(
        timedelta(hours=lifetime_hours) / 5, timedelta(hours=lifetime_hours) * period_fraction
    )
    start, end = suggested_window(not_after - overlap, not_after)
    assert start == not_after - overlap
    assert start < end <= not_after - overlap / 4
    if overlap >= timedelta(hours=32):
        first_run = T0 + timedelta(minutes=phase_minutes)
        days_until = -((first_run - start) // DAY)  # first run at or after start
        run = first_run + days_until * DAY
        assert start <= run < end
