"""The broker's sense of time.

Owns: the `Clock` protocol and its three implementations — the wall clock for `orbitq serve`, a
simulated clock that only moves when told (tests, `orbitq sim`, benchmarks), and a shifted clock
that runs at a chosen rate from a chosen instant (demos that must live near a TLE snapshot's
epoch). Nothing in orbitq reads `time.time()` directly; everything takes a Clock.

Does not own: timers or scheduling (APScheduler calls plain functions that read a Clock).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

# The unit is defined once, by the ledger (the lowest layer); the services take it from here.
from orbitq.ledger.model import NANOS_PER_SECOND

__all__ = [
    "NANOS_PER_SECOND",
    "Clock",
    "ShiftedClock",
    "SimulatedClock",
    "SystemClock",
    "from_ns",
    "to_ns",
]


class Clock(Protocol):
    """A source of the current instant, always timezone-aware UTC."""

    def now(self) -> datetime: ...


def to_ns(instant: datetime) -> int:
    """Nanoseconds since the Unix epoch of an aware datetime (microsecond precision)."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: orbitq works in aware UTC instants")
    delta = instant - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NANOS_PER_SECOND + delta.microseconds * 1000


def from_ns(ns: int) -> datetime:
    """The aware UTC datetime of nanoseconds since the Unix epoch (truncated to microseconds)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that moves only when advanced; never goes backwards. Thread-safe."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimulatedClock needs an aware UTC start")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("a simulated clock never goes backwards")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, instant: datetime) -> None:
        with self._lock:
            if instant < self._now:
                raise ValueError("a simulated clock never goes backwards")
            self._now = instant


class ShiftedClock:
    """Shows `start` at the real instant `anchor` (default: now) and runs at `rate` times real
    speed from there. Anchored to the wall clock, so every process given the same anchor (a
    broker's `init` and each later `serve`) agrees on the time."""

    def __init__(self, start: datetime, rate: float = 1.0, anchor: datetime | None = None) -> None:
        if start.tzinfo is None or (anchor is not None and anchor.tzinfo is None):
            raise ValueError("ShiftedClock needs aware UTC instants")
        if not 0 < rate <= 10_000:
            raise ValueError("rate must be in (0, 10000]")
        self._start = start.astimezone(UTC)
        self._rate = rate
        self._anchor = anchor or datetime.now(UTC)

    def now(self) -> datetime:
        elapsed = (datetime.now(UTC) - self._anchor).total_seconds() * self._rate
        return self._start + timedelta(seconds=elapsed)
