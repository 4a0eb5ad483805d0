"""Validity window: backdate, clipping to template and issuer, client-requested times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.policy_helpers import NOW, denial, engine, make_template, plan, request

DAY = timedelta(days=1)


def test_not_before_is_backdated_five_minutes() -> None:
    assert plan(engine(), request()).plan.not_before == NOW - timedelta(minutes=5)


def test_not_after_defaults_to_the_template_validity() -> None:
    assert plan(engine(), request()).plan.not_after == NOW + 90 * DAY


def test_requested_not_after_beyond_the_template_is_clipped() -> None:
    decision = plan(engine(), request(not_after=NOW + 400 * DAY))
    assert decision.plan.not_after == NOW + 90 * DAY


def test_clipping_is_explained_in_the_reasons() -> None:
    decision = plan(engine(), request(not_after=NOW + 400 * DAY))
    assert any("clipped to the template validity (90d)" in r for r in decision.reasons)


def test_shorter_requested_not_after_is_honoured() -> None:
    assert plan(engine(), request(not_after=NOW + 7 * DAY)).plan.not_after == NOW + 7 * DAY


def test_not_after_is_clipped_to_the_issuer() -> None:
    issuer_end = NOW + 30 * DAY
    assert plan(engine(), request(), issuer_not_after=issuer_end).plan.not_after == issuer_end


def test_future_requested_not_before_is_honoured() -> None:
    start = NOW + 2 * DAY
    assert plan(engine(), request(not_before=start)).plan.not_before == start


def test_backdated_requested_not_before_is_raised_to_the_skew_allowance() -> None:
    decision = plan(engine(), request(not_before=NOW - 30 * DAY))
    assert decision.plan.not_before == NOW - timedelta(minutes=5)


def test_requested_not_after_in_the_past_is_denied_by_validity() -> None:
    assert denial(engine(), request(not_after=NOW - DAY)).rule == "validity"


def test_requested_not_before_beyond_the_template_validity_is_denied() -> None:
    assert denial(engine(), request(not_before=NOW + 100 * DAY)).rule == "validity"


def test_expired_issuer_is_denied_by_validity() -> None:
    assert denial(engine(), request(), issuer_not_after=NOW - DAY).rule == "validity"


def test_validity_is_truncated_to_whole_seconds() -> None:
    now = NOW.replace(microsecond=987654)
    decision = plan(engine(), request(), now=now)
    assert decision.plan.not_before.microsecond == decision.plan.not_after.microsecond == 0


def test_naive_requested_times_are_taken_as_utc() -> None:
    naive = (NOW + 7 * DAY).replace(tzinfo=None)
    assert plan(engine(), request(not_after=naive)).plan.not_after == NOW + 7 * DAY


def test_plan_refuses_a_naive_clock() -> None:
    with pytest.raises(ValueError):
        plan(engine(), request(), now=datetime(2025, 1, 1))


def test_validity_is_in_utc() -> None:
    assert (
        plan(
            engine(make_template(validity="1d", renewal_period="1h")), request()
        ).plan.not_after.tzinfo
        == UTC
    )
