"""Budget periods and the rollover rule: pure arithmetic, no I/O.

Owns: where a period of a budget starts and ends (UTC; a day at 00:00, an ISO week on Monday
00:00, a month on its first day 00:00, whatever its length), and what happens to a period's
budget tokens at its end (`close`): how much lapses, how much rolls over, and how much stays
because it is held in escrow.

Does not own: when this runs (orbitq.services.budgets.service) or the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum

ROLLOVER_PERCENT_MAX = 100


class Period(IntEnum):
    """How long a budget's period lasts. Equal to orbitq.v1.BudgetPeriod."""

    DAY = 1
    WEEK = 2
    MONTH = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Period:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown period {text!r}: use day, week or month") from None


def period_start(instant: datetime, period: Period) -> datetime:
    """The start of the period that contains `instant` (aware; the result is UTC)."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: periods are computed on aware UTC instants")
    utc = instant.astimezone(UTC)
    day = datetime(utc.year, utc.month, utc.day, tzinfo=UTC)
    if period is Period.DAY:
        return day
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())  # Monday = 0
    return day.replace(day=1)


def next_start(start: datetime, period: Period) -> datetime:
    """The start of the period after the one that starts at `start` (a period start)."""
    assert period_start(start, period) == start, f"{start} is not a {period.label} start"
    if period is Period.DAY:
        return start + timedelta(days=1)
    if period is Period.WEEK:
        return start + timedelta(days=7)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def rollover_cap(granted: int, percent: int) -> int:
    """The most of one period's grant that may roll over: floor(granted * percent / 100)."""
    assert granted >= 0
    assert 0 <= percent <= ROLLOVER_PERCENT_MAX
    return granted * percent // 100


@dataclass(frozen=True, slots=True)
class Closing:
    """What becomes of a period's budget tokens at its end.

    `unspent` = granted + carried_in - spent (not below 0): the budget's tokens are spent
    first, before tokens the tenant holds from mints or transfers, which never lapse. `spent`
    is net (Budgets.spent) and may be negative: tokens reserved in an earlier period and
    released in this one are budget tokens again.
    `carried` = min(unspent, the rollover cap): they join the next period's budget.
    `lapsed` = the rest, but never more than the account has available when the period is
    closed (tokens reserved by requests sit in escrow and are not touched: `kept` is what
    stays with the tenant because of that).
    """

    unspent: int
    carried: int
    lapsed: int
    kept: int


def close(
    granted: int, carried_in: int, spent: int, available: int, rollover_percent: int
) -> Closing:
    assert min(granted, carried_in) >= 0
    unspent = max(0, granted + carried_in - spent)
    carried = min(unspent, rollover_cap(granted, rollover_percent))
    due = unspent - carried
    lapsed = min(due, max(0, available))
    closing = Closing(unspent, carried, lapsed, due - lapsed)
    assert closing.carried + closing.lapsed + closing.kept == closing.unspent
    return closing
