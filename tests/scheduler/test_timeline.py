"""Timeline: a step function with earliest-fit search, checked against a per-second model."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitq.services.scheduler.timeline import Timeline

HORIZON = 120
CAPACITY = 5


def levels(timeline: Timeline, horizon: int = HORIZON) -> list[int]:
    return [timeline.level_at(t) for t in range(horizon)]


def test_add_and_remove_restore_the_empty_timeline() -> None:
    timeline = Timeline()
    timeline.add(10, 20, 3)
    timeline.add(15, 30, 2)
    assert timeline.times == [10, 15, 20, 30]
    assert timeline.levels == [3, 5, 2, 0]
    timeline.add(10, 20, -3)
    timeline.add(15, 30, -2)
    assert timeline.times == []
    assert timeline.levels == []


def test_adjacent_equal_levels_merge() -> None:
    timeline = Timeline()
    timeline.add(0, 10, 1)
    timeline.add(10, 20, 1)
    assert timeline.times == [0, 20]
    assert timeline.levels == [1, 0]


@pytest.mark.parametrize(
    ("earliest", "duration", "limit", "latest", "expected"),
    [
        (0, 5, 2, 100, 0),  # free at once
        (0, 15, 1, 100, 30),  # level 2 on [10, 30) and 3 on [20, 25)
        (12, 5, 2, 100, 12),  # level 2 is allowed
        (18, 5, 2, 100, 25),  # level 3 on [20, 25)
        (0, 15, 1, 20, None),  # not before latest
        (0, 5, -1, 100, None),  # nothing fits a negative limit
    ],
)
def test_earliest_fit(
    earliest: int, duration: int, limit: int, latest: int, expected: int | None
) -> None:
    timeline = Timeline()
    timeline.add(10, 30, 2)
    timeline.add(20, 25, 1)
    assert timeline.earliest_fit(earliest, duration, limit, latest) == expected


@pytest.mark.parametrize(
    ("earliest", "duration", "limit", "latest", "expected"),
    [
        (0, 5, 2, 100, 100),  # free at the latest instant
        (0, 15, 1, 28, None),  # over 1 on [10, 30): 15 s fit neither before 10 nor by 28
        (0, 10, 1, 28, 0),  # [0, 10) ends where the level rises
        (0, 5, 2, 22, 15),  # level 3 on [20, 25): end by 20
        (16, 5, 2, 22, None),
        (0, 5, -1, 100, None),
    ],
)
def test_latest_fit(
    earliest: int, duration: int, limit: int, latest: int, expected: int | None
) -> None:
    timeline = Timeline()
    timeline.add(10, 30, 2)
    timeline.add(20, 25, 1)
    assert timeline.latest_fit(earliest, duration, limit, latest) == expected


def test_free_runs_and_first_above() -> None:
    timeline = Timeline()
    timeline.add(10, 30, 2)
    timeline.add(20, 25, 1)
    assert timeline.free_runs(0, 40, 2) == [(0, 20), (25, 40)]
    assert timeline.free_runs(0, 40, 1) == [(0, 10), (30, 40)]
    assert timeline.free_runs(21, 24, 2) == []
    assert timeline.free_runs(0, 40, 1, piece=10) == [(0, 10), (30, 40)]
    assert timeline.free_runs(0, 40, 1, piece=11) == []
    assert timeline.free_runs(0, 40, 2, enough=5) == [(0, 20)]  # stops once it has enough
    assert timeline.first_above(0, 40, 2) == 20
    assert timeline.first_above(26, 40, 1) == 26
    assert timeline.first_above(30, 40, 0) is None
    assert timeline.next_at_most(21, 2) == 25
    assert timeline.next_at_most(21, 0) == 30


def test_prune_keeps_the_future() -> None:
    timeline = Timeline()
    timeline.add(10, 30, 2)
    timeline.add(40, 50, 1)
    timeline.prune(20)
    assert levels(timeline)[20:] == [2] * 10 + [0] * 10 + [1] * 10 + [0] * (HORIZON - 50)
    timeline.check()
    timeline.prune(35)
    assert timeline.times == [40, 50]
    timeline.check()


intervals = st.tuples(
    st.integers(0, HORIZON - 2), st.integers(1, 30), st.integers(1, CAPACITY)
).map(lambda t: (t[0], min(HORIZON - 1, t[0] + t[1]), t[2]))


@settings(max_examples=200, deadline=None)
@given(st.lists(intervals, max_size=30), st.data())
def test_random_reserve_unreserve_never_exceeds_and_restores(
    requests: list[tuple[int, int, int]], data: st.DataObject
) -> None:
    """Place each interval at its earliest fit, then remove a random subset in random order:
    usage never exceeds capacity, matches a per-second model, and removal restores exactly."""
    timeline = Timeline()
    model = [0] * (HORIZON * 2)
    held: list[tuple[int, int, int, list[int], list[int]]] = []
    for start, end, amount in requests:
        duration = end - start
        before = (list(timeline.times), list(timeline.levels))
        found = timeline.earliest_fit(start, duration, CAPACITY - amount, HORIZON)
        brute = next(
            (
                s
                for s in range(start, HORIZON + 1)
                if max(model[s : s + duration]) + amount <= CAPACITY
            ),
            None,
        )
        assert found == brute
        late = timeline.latest_fit(start, duration, CAPACITY - amount, HORIZON)
        latest_brute = next(
            (
                s
                for s in range(HORIZON, start - 1, -1)
                if max(model[s : s + duration]) + amount <= CAPACITY
            ),
            None,
        )
        assert late == latest_brute
        if found is None:
            continue
        timeline.add(found, found + duration, amount)
        for t in range(found, found + duration):
            model[t] += amount
        timeline.check()
        assert levels(timeline, HORIZON * 2) == model
        assert max(model) <= CAPACITY
        held.append((found, found + duration, amount, *before))
    order = data.draw(st.permutations(range(len(held))))
    for index in order:
        start, end, amount, _, _ = held[index]
        timeline.add(start, end, -amount)
        for t in range(start, end):
            model[t] -= amount
        timeline.check()
        assert levels(timeline, HORIZON * 2) == model
    assert timeline.times == []
    assert timeline.levels == []


@settings(max_examples=100, deadline=None)
@given(st.lists(intervals, max_size=20), st.integers(0, HORIZON), st.integers(0, CAPACITY))
def test_free_runs_match_the_model(items: list[tuple[int, int, int]], cut: int, limit: int) -> None:
    timeline = Timeline()
    for start, end, amount in items:
        timeline.add(start, end, amount)
    model = levels(timeline)
    runs = timeline.free_runs(0, HORIZON, limit)
    free = [False] * HORIZON
    for start, end in runs:
        assert start < end
        for t in range(start, end):
            free[t] = True
    assert free == [level <= limit for level in model]
    for (_, end), (start, _) in itertools.pairwise(runs):
        assert end < start  # maximal: runs never touch
    timeline.prune(cut)
    timeline.check()
    assert levels(timeline)[cut:] == model[cut:]
