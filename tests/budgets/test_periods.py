"""Period arithmetic (UTC days, ISO weeks, calendar months) and the rollover rule, by property."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitq.services.budgets.periods import (
    Period,
    close,
    next_start,
    period_start,
    rollover_cap,
)

instants = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
periods = st.sampled_from(list(Period))


@given(instants, periods)
def test_a_period_contains_the_instant_and_starts_at_midnight_utc(
    instant: datetime, period: Period
) -> None:
    start = period_start(instant, period)
    end = next_start(start, period)
    assert start <= instant < end
    assert (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0)
    assert period_start(end, period) == end
    assert period_start(end - timedelta(microseconds=1), period) == start
    if period is Period.DAY:
        assert end - start == timedelta(days=1)
    elif period is Period.WEEK:
        assert start.weekday() == 0
        assert end - start == timedelta(days=7)
    else:
        assert start.day == 1
        assert (end - start).days == calendar.monthrange(start.year, start.month)[1]


@given(instants, periods)
def test_other_time_zones_name_the_same_period(instant: datetime, period: Period) -> None:
    from datetime import timezone

    elsewhere = instant.astimezone(timezone(timedelta(hours=-11)))
    assert period_start(elsewhere, period) == period_start(instant, period)


def test_month_lengths_and_leap_years() -> None:
    feb = period_start(datetime(2024, 2, 29, 23, 59, tzinfo=UTC), Period.MONTH)
    assert feb == datetime(2024, 2, 1, tzinfo=UTC)
    assert next_start(feb, Period.MONTH) == datetime(2024, 3, 1, tzinfo=UTC)
    december = datetime(2025, 12, 1, tzinfo=UTC)
    assert next_start(december, Period.MONTH) == datetime(2026, 1, 1, tzinfo=UTC)
    # 2025-12-06 is a Saturday: its ISO week began on Monday the 1st.
    assert period_start(datetime(2025, 12, 6, tzinfo=UTC), Period.WEEK) == december
    with pytest.raises(ValueError, match="naive"):
        period_start(datetime(2025, 1, 1), Period.DAY)
    with pytest.raises(ValueError, match="use day, week or month"):
        Period.parse("fortnight")


amounts = st.integers(min_value=0, max_value=2**62)


@given(
    amounts,
    amounts,
    amounts,
    st.integers(min_value=-(2**40), max_value=2**62),
    st.integers(min_value=0, max_value=100),
)
def test_closing_splits_exactly_what_is_unspent(
    granted: int, carried_in: int, spent: int, available: int, percent: int
) -> None:
    closing = close(granted, carried_in, spent, available, percent)
    assert closing.unspent == max(0, granted + carried_in - spent)
    assert closing.carried + closing.lapsed + closing.kept == closing.unspent
    # At most N % of the grant rolls over; what is carried never exceeds what is unspent.
    assert closing.carried == min(closing.unspent, granted * percent // 100)
    assert closing.carried <= rollover_cap(granted, percent)
    # Never more lapses than the account has available (escrow is not touched).
    assert 0 <= closing.lapsed <= max(0, available)
    if available >= closing.unspent:
        assert closing.kept == 0


def test_rollover_examples() -> None:
    assert close(1000, 0, 200, 10_000, 50) == close(1000, 0, 200, 10_000, 50)
    closing = close(1000, 0, 200, 10_000, 50)
    assert (closing.unspent, closing.carried, closing.lapsed, closing.kept) == (800, 500, 300, 0)
    closing = close(1000, 500, 200, 100, 0)
    assert (closing.unspent, closing.carried, closing.lapsed, closing.kept) == (1300, 0, 100, 1200)
    assert close(100, 0, 150, 50, 100).unspent == 0
