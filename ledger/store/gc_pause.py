"""Pausing CPython's cyclic garbage collector over one group commit.

Owns: `collector_paused()`, the block a group commit runs in.

Why: a group of 8,190 transfers makes some 50,000 short-lived objects (records, outcomes, rows,
leaves). Every 700 allocations the collector runs; objects the group still holds move to an
older generation, and each time enough have moved it walks every long-lived object of the
process (the broker's caches, its modules, a bench's prepared batches) again. Measured on the
append path (bench/ledger.py), that walking was about a fifth of the CPU a transfer costs, and
it grows with the process's heap, not with the group. Nearly all of a group's objects die by
reference counting when it ends; none of them needs the cycle collector meanwhile.

Bounds: a group is bounded (orbitq.ledger.store.work: 8,190 transfers, one expiry pass), so at
most one group's cyclic garbage waits for the collector, which resumes when the block ends and
runs on the next allocation if its threshold was passed. Pausing is process-wide: other threads
allocate without collection for the length of one commit (milliseconds). The collector is only
re-enabled if this block disabled it: a process that turned it off keeps it off. (If two writers
overlapped, the first to finish would resume it early: only the saving is lost.)

Does not own: anything about what a group writes (orbitq.ledger.store.write).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for the block (reference counting still frees everything
    acyclic at once), back on afterwards if it was on before."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
