"""The store's timestamp column type: aware UTC in, aware UTC out, and on SQLite a text form
whose string order is time order (claim_due_polls compares timestamps in SQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.tables import UTCDateTime

SQLITE = sqlite.dialect()
POSTGRES = postgresql.dialect()
column_type = UTCDateTime()

aware = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=-11)), timezone(timedelta(hours=5, minutes=30))]
    ),
)


@given(aware)
def test_sqlite_text_round_trips_to_the_same_instant_in_utc(value: datetime) -> None:
    stored = column_type.process_bind_param(value, SQLITE)
    back = column_type.process_result_value(stored, SQLITE)
    assert back == value and back is not None and back.tzinfo is UTC


@given(aware, aware)
def test_sqlite_text_sorts_like_the_instants(a: datetime, b: datetime) -> None:
    sa_, sb = column_type.process_bind_param(a, SQLITE), column_type.process_bind_param(b, SQLITE)
    assert (sa_ < sb) == (a < b) and (sa_ == sb) == (a == b)


def test_postgres_gets_an_aware_utc_datetime() -> None:
    value = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    stored = column_type.process_bind_param(value, POSTGRES)
    assert stored == value and stored.tzinfo is UTC


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES])
def test_naive_datetimes_are_refused(dialect: object) -> None:
    with pytest.raises(ValueError, match="naive"):
        column_type.process_bind_param(datetime(2030, 1, 1), dialect)  # type: ignore[arg-type]
