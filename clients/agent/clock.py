"""The agent's clock from a spec: `system`, or `shifted:<RFC 3339 start>[x<rate>][@<anchor>]`
(the clock shows `start` at the real instant `anchor` and runs `rate` times real speed), the
same spec a broker is given, so an agent and its broker agree on the time in a demo that runs
near a TLE snapshot's epoch.

Owns: parsing the spec into a clock and its rate (run_forever converts waits with it). The
broker parses the same form in orbitq.services.broker; the agent never imports the services.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_SHIFTED = re.compile(r"^shifted:(?P<start>[^x@]+)(?:x(?P<rate>[0-9.]+))?(?:@(?P<anchor>.+))?$")
RATE_MAX = 10_000.0


@dataclass(frozen=True)
class SpecClock:
    """A clock showing `start` at the real instant `anchor`, running `rate` x real time."""

    start: datetime | None = None
    anchor: datetime | None = None
    rate: float = 1.0

    def now(self) -> datetime:
        real = datetime.now(UTC)
        if self.start is None or self.anchor is None:
            return real
        elapsed = (real - self.anchor).total_seconds() * self.rate
        return self.start + timedelta(seconds=elapsed)


def clock_of(spec: str) -> SpecClock:
    """The clock of a spec; ValueError naming what is wrong."""
    if spec == "system":
        return SpecClock()
    match = _SHIFTED.match(spec)
    if match is None:
        raise ValueError(f"clock {spec!r}: use 'system' or 'shifted:2025-12-06T00:00:00Z[x60]'")
    rate = float(match["rate"] or 1.0)
    if not 0 < rate <= RATE_MAX:
        raise ValueError(f"clock {spec!r}: the rate must be in (0, {RATE_MAX:g}]")
    start = _instant(match["start"], spec)
    anchor = _instant(match["anchor"], spec) if match["anchor"] else datetime.now(UTC)
    return SpecClock(start, anchor, rate)


def _instant(text: str, spec: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"clock {spec!r}: {text!r} is not an RFC 3339 instant") from None
    if value.tzinfo is None:
        raise ValueError(f"clock {spec!r}: {text!r} needs a time zone")
    return value.astimezone(UTC)
