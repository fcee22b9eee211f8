"""A resource's usage over time as a step function, with earliest-fit and free-run searches.

Owns: `Timeline`, the one data structure behind node cpu, node storage, a node's radio and a
station's antennas. Usage is an integer step function kept in canonical form: sorted
breakpoints `times`, `levels[i]` is the usage on [times[i], times[i+1]); usage is 0 before the
first breakpoint and after the last one; no two neighbouring levels are equal and the first
level is not 0. Canonical form makes "add then subtract restores exactly" an equality of lists.

Does not own: capacities (callers pass the limit they test against) or who holds what.

Cost: `add` is O(log n + k) for k breakpoints inside the interval (plus a list insert, a
memmove in C); searches are O(log n + k) for k breakpoints scanned. Every loop is bounded by
the number of breakpoints, which `BREAKPOINTS_MAX` caps.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

BREAKPOINTS_MAX = 4_000_000  # ~ every second of 46 days; a guard against runaway growth


class Timeline:
    """Integer usage over integer time; see the module docstring for the canonical form."""

    __slots__ = ("levels", "times")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.levels: list[int] = []

    def __len__(self) -> int:
        return len(self.times)

    def level_at(self, instant: int) -> int:
        index = bisect_right(self.times, instant) - 1
        return self.levels[index] if index >= 0 else 0

    def max_over(self, start: int, end: int) -> int:
        """The highest usage on [start, end)."""
        assert start < end
        times, levels = self.times, self.levels
        index = bisect_right(times, start) - 1
        highest = levels[index] if index >= 0 else 0
        index += 1
        count = len(times)
        while index < count and times[index] < end:
            level = levels[index]
            highest = max(highest, level)
            index += 1
        return highest

    def first_above(self, start: int, end: int, limit: int) -> int | None:
        """The first instant in [start, end) where usage exceeds `limit`, or None."""
        assert start < end
        times, levels = self.times, self.levels
        index = bisect_right(times, start) - 1
        if index >= 0 and levels[index] > limit:
            return start
        if index < 0 and limit < 0:
            return start
        index += 1
        count = len(times)
        while index < count and times[index] < end:
            if levels[index] > limit:
                return times[index]
            index += 1
        return None

    def next_at_most(self, instant: int, limit: int) -> int:
        """The first instant >= `instant` where usage is at most `limit` (limit >= 0)."""
        assert limit >= 0
        times, levels = self.times, self.levels
        index = bisect_right(times, instant) - 1
        if index < 0 or levels[index] <= limit:
            return instant
        index += 1
        count = len(times)
        while index < count:
            if levels[index] <= limit:
                return times[index]
            index += 1
        raise AssertionError("a canonical timeline ends at usage 0")

    def earliest_fit(self, earliest: int, duration: int, limit: int, latest: int) -> int | None:
        """The earliest s in [earliest, latest] with usage <= `limit` on [s, s + duration)."""
        assert duration > 0
        if limit < 0 or earliest > latest:
            return None
        times, levels = self.times, self.levels
        count = len(times)
        start = earliest
        index = bisect_right(times, start) - 1
        while True:
            if index >= 0 and levels[index] > limit:
                index += 1  # the level after the last breakpoint is 0, so index < count
                start = times[index]
                if start > latest:
                    return None
                continue
            finish = start + duration
            scan = index + 1
            while scan < count and times[scan] < finish:
                if levels[scan] > limit:
                    break
                scan += 1
            else:
                return start
            index = scan

    def latest_fit(self, earliest: int, duration: int, limit: int, latest: int) -> int | None:
        """The latest s in [earliest, latest] with usage <= `limit` on [s, s + duration)."""
        assert duration > 0
        if limit < 0:
            return None
        times, levels = self.times, self.levels
        start = latest
        while start >= earliest:
            index = bisect_left(times, start + duration) - 1
            blocked = -1
            while index >= 0:
                if levels[index] > limit:
                    blocked = times[index]
                    break
                if times[index] <= start:
                    break
                index -= 1
            if blocked < 0:
                return start
            start = blocked - duration  # end the window where the blocking level begins
        return None

    def free_runs(
        self, start: int, end: int, limit: int, enough: int = 0, piece: int = 1
    ) -> list[tuple[int, int]]:
        """Maximal sub-intervals of [start, end) where usage <= `limit`, in time order, of at
        least `piece` seconds (shorter ones are left out). With `enough` > 0, stops once the
        runs add up to `enough` seconds."""
        assert start < end
        times, levels = self.times, self.levels
        index = bisect_right(times, start) - 1
        count = len(times)
        runs: list[tuple[int, int]] = []
        run_start = start if index < 0 or levels[index] <= limit else -1
        found = 0
        index += 1
        while index < count:
            instant = times[index]
            if instant >= end:
                break
            if levels[index] <= limit:
                if run_start < 0:
                    run_start = instant
            elif run_start >= 0:
                if instant - run_start >= piece:
                    runs.append((run_start, instant))
                    found += instant - run_start
                    if 0 < enough <= found:
                        return runs
                run_start = -1
            index += 1
        if run_start >= 0 and end - run_start >= piece:
            runs.append((run_start, end))
        return runs

    def add(self, start: int, end: int, amount: int) -> None:
        """Add `amount` (may be negative) to the usage on [start, end)."""
        assert start < end
        if amount == 0:
            return
        times, levels = self.times, self.levels
        first = self._split(start)
        last = self._split(end)
        for index in range(first, last):
            levels[index] += amount
        # Canonical form: only the two edges can have become equal to a neighbour.
        if last < len(times) and levels[last] == levels[last - 1]:
            del times[last]
            del levels[last]
        if (first == 0 and levels[0] == 0) or (first > 0 and levels[first] == levels[first - 1]):
            del times[first]
            del levels[first]
        assert len(times) <= BREAKPOINTS_MAX, "timeline breakpoints over BREAKPOINTS_MAX"

    def _split(self, instant: int) -> int:
        """Make `instant` a breakpoint (keeping the usage) and return its index."""
        times = self.times
        index = bisect_left(times, instant)
        if index < len(times) and times[index] == instant:
            return index
        times.insert(index, instant)
        self.levels.insert(index, self.levels[index - 1] if index > 0 else 0)
        return index

    def prune(self, before: int) -> None:
        """Forget usage before `before` (it can no longer matter); usage from `before` on stays."""
        times, levels = self.times, self.levels
        index = bisect_right(times, before) - 1
        if index <= 0:
            return
        level = levels[index]
        del times[:index]
        del levels[:index]
        times[0] = before
        if level == 0:
            del times[0]
            del levels[0]

    def check(self) -> None:
        """Assert the canonical form (tests and debug paths)."""
        times, levels = self.times, self.levels
        assert len(times) == len(levels)
        if not times:
            return
        assert levels[0] != 0
        assert levels[-1] == 0
        for index in range(1, len(times)):
            assert times[index - 1] < times[index]
            assert levels[index - 1] != levels[index]
