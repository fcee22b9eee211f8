"""Clocks from their specs: a shifted clock anchored once is the same clock in every process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orbitq.services.broker import anchored, clock_from_spec
from orbitq.services.clock import ShiftedClock, SimulatedClock, SystemClock, from_ns, to_ns

EPOCH = datetime(2025, 12, 6, tzinfo=UTC)


def test_an_anchored_shifted_clock_agrees_with_itself_across_processes() -> None:
    spec = anchored("shifted:2025-12-06T00:00:00Zx300")
    assert "@" in spec
    assert anchored(spec) == spec  # anchoring twice changes nothing
    first, second = clock_from_spec(spec), clock_from_spec(spec)
    assert isinstance(first, ShiftedClock)
    a, b = first.now(), second.now()
    # Two clocks from one anchored spec differ only by the real time between the two reads.
    assert timedelta(0) <= b - a < timedelta(seconds=300)
    assert a >= EPOCH


def test_a_shifted_clock_runs_at_its_rate_from_its_anchor() -> None:
    anchor = datetime.now(UTC) - timedelta(seconds=10)
    clock = ShiftedClock(EPOCH, 60, anchor)
    elapsed = clock.now() - EPOCH
    assert timedelta(minutes=10) <= elapsed < timedelta(minutes=20)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sundial", "use 'system' or"),
        ("shifted:yesterday", "not an RFC 3339 instant"),
        ("shifted:2025-12-06T00:00:00", "needs a time zone"),
        ("shifted:2025-12-06T00:00:00Zx0", "rate must be"),
    ],
)
def test_bad_clock_specs_are_refused_with_a_reason(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        clock_from_spec(spec)


def test_system_and_simulated_clocks() -> None:
    assert isinstance(clock_from_spec("system"), SystemClock)
    clock = SimulatedClock(EPOCH)
    clock.advance(90)
    assert clock.now() == EPOCH + timedelta(seconds=90)
    with pytest.raises(ValueError, match="never goes backwards"):
        clock.set(EPOCH)
    assert from_ns(to_ns(clock.now())) == clock.now()
