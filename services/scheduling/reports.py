"""What one pass of the scheduling loop did: `CycleReport` and `AdvanceReport`.

Owns: the two frozen reports the loop returns to its callers (the broker's job, the simulator,
tests). `ran` is False when another replica leads and this one did nothing.

Does not own: anything the reports name (requests are in the store, by id).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one scheduling cycle did. `ran` is False when another replica leads."""

    ran: bool
    placed: tuple[str, ...] = ()
    displaced: tuple[str, ...] = ()
    unschedulable: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    # Requests sent back to pending or failed because their node went down or the world
    # changed under their placement.
    evacuated: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AdvanceReport:
    """What one pass of time-driven transitions did. `ran` is False when another replica
    leads."""

    ran: bool
    started: tuple[str, ...] = ()
    completed: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()
    # Reservations of terminal requests released or settled in the ledger by this pass.
    resolved: tuple[str, ...] = ()
