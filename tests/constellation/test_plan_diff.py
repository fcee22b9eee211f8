"""The refresh's diff, case by case, on hand-made windows (no database, no orbits)."""

from __future__ import annotations

from orbitq.services.clock import NANOS_PER_SECOND, from_ns
from orbitq.services.constellation import StoredContact, contact_id
from orbitq.services.constellation.plan import _Diff, _diff_chunk
from orbitq.services.orbits import ContactWindow

S = NANOS_PER_SECOND
NOW = 1_000 * S + S // 2  # 1000.5 s


def window(station: str, aos: int, los: int, elevation: float = 30.0) -> ContactWindow:
    return ContactWindow("7", station, from_ns(aos), from_ns(los), elevation)


def stored(station: str, aos: int, los: int, elevation: float = 30.0) -> StoredContact:
    return StoredContact(contact_id("7", station, aos), "7", station, aos, los, elevation)


def diff_of(windows: list[ContactWindow], contacts: list[StoredContact]) -> _Diff:
    diff = _Diff()
    _diff_chunk(diff, windows, contacts, NOW)
    return diff


def test_matching_windows_keep_ids_and_write_nothing_within_the_tolerance() -> None:
    in_progress = stored("a", 500 * S, 1500 * S)
    future = stored("a", 2000 * S, 2500 * S)
    diff = diff_of(
        # The computation starts at now: the contact in progress arrives clipped.
        [window("a", NOW, 1500 * S), window("a", 2000 * S + S // 20, 2500 * S - S // 20)],
        [in_progress, future],
    )
    assert diff.unchanged == 2
    assert (len(diff.insert_aos), diff.update_ids, diff.deleted, diff.truncated) == (0, [], [], [])


def test_moved_windows_are_updated_under_their_old_id() -> None:
    future = stored("a", 2000 * S, 2500 * S, 20.0)
    diff = diff_of([window("a", 2000 * S + 3 * S, 2600 * S, 25.0)], [future])
    assert diff.update_ids == [future.id]
    assert (diff.update_aos[0], diff.update_los[0], diff.update_elevation[0]) == (
        2003 * S,
        2600 * S,
        25.0,
    )


def test_gone_windows_are_deleted_or_end_now_if_they_had_begun() -> None:
    begun = stored("a", 800 * S, 1200 * S)
    later = stored("a", 3000 * S, 3500 * S)
    diff = diff_of([], [begun, later])
    assert (diff.truncated, diff.deleted) == ([begun.id], [later.id])


def test_new_windows_get_ids_by_aos_second_never_reusing_one() -> None:
    # A contact that ended half a second ago in the same second as a new one begins (now).
    just_over = stored("b", 1000 * S + S // 10, 1000 * S + 3 * S // 10)
    diff = diff_of([window("b", NOW, 1300 * S), window("b", 4000 * S, 4200 * S)], [just_over])
    rows = diff.insert_rows(0, 10)
    assert [row["id"] for row in rows] == ["c-7-b-1000-1", "c-7-b-4000"]
    assert just_over.id == "c-7-b-1000"
    assert (diff.deleted, diff.truncated) == ([], [])  # what is over is never rewritten
    assert diff.longest_ns == 300 * S - S // 2
