"""Pausing CPython's cyclic garbage collector over a block that builds many acyclic objects.

Owns: `collector_paused()`. Pure (the standard library only), so that any layer may use it: the
ledger's group commit (orbitq.ledger.store.write) and the contact search's result build
(orbitq.services.orbits.contacts) both do.

Why: every 700 allocations the collector runs; objects still held move to an older generation,
and each time enough have moved it walks every long-lived object of the process again. A block
that builds tens of thousands of short-lived or result objects therefore pays collections that
find nothing, and that cost grows with the process's heap, not with the block. Measured:

- a ledger group of 8,190 transfers makes some 50,000 short-lived objects (records, outcomes,
  rows, leaves); the walking was about a fifth of a transfer's CPU on the append path
  (bench/ledger.py);
- the contact search's ~0.7 M result windows: 2.6 s -> 0.6 s for the bench job
  (bench/contacts.py).

Nearly all of these objects hold no cycles, so reference counting still frees them at once.

Bounds: callers pause it over bounded work (a ledger group is at most 8,190 transfers and one
expiry pass; a contact result is the size of its job's output), so at most one block's cyclic
garbage waits for the collector, which resumes when the block ends and runs on the next
allocation if its threshold was passed. Pausing is process-wide: other threads allocate without
collection for the length of the block. The collector is only re-enabled if this block disabled
it: a process that turned it off keeps it off. (If two blocks overlapped, the first to finish
would resume it early: only the saving is lost.)

Does not own: what a block builds or writes.
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
