"""orbitq.services.scheduling: the scheduling loop, which moves stored requests through
placement and time.

Owns (docs/scheduler.md "Scheduling cycles"): one in-memory Scheduler per broker kept in step
with the database, its cycles made durable, the transitions time makes, the reservations owed
by requests that ended, one active scheduler among replicas, and the schedule document of what
is stored. `SchedulingLoop` is the entry point; the broker builds it beside `Requests`:

    loop = SchedulingLoop(requests.store, requests.reservations, constellation,
                          requests.hub, LeaderLock(engine), clock.now)
    loop.run_cycle(now)                  -> CycleReport
    loop.advance(now)                    -> AdvanceReport
    loop.tick(now)                       -> (AdvanceReport, CycleReport)
    loop.schedule_document(start, end)   -> the §9 document
    loop.close()                         -> gives up the leader lock

| module | owns |
| --- | --- |
| `loop` | `SchedulingLoop`: the lock, the leader check, the order of each pass, pruning |
| `world_sync` | the Scheduler's world kept in step with the constellation (added to or rebuilt) |
| `evacuation` | live work on nodes that went down: back to PENDING, or FAILED |
| `placing` | one cycle over the stored pending requests, fair share, its outcome stored |
| `advance` | time-driven transitions: EXPIRED, then started, then completed |
| `start` | the seam PLACED → RUNNING: `Start`; `TicketStart` (agents), `ClockStart` (plan) |
| `completion` | the seam RUNNING → COMPLETED: `Completion`; `ReceiptDeadline`, `ClockCompletion` |
| `owed` | release or settle the reservations of terminal requests the ledger still holds |
| `moves` | moves applied and announced; time-due moves in bounded batches |
| `leader` | `LeaderLock`: one active scheduler among replicas (PostgreSQL advisory lock) |
| `convert` | constellation records → scheduler models (whole-second contacts, station caps) |
| `export` | the schedule document (§9) of what is stored |
| `reports` | `CycleReport`, `AdvanceReport` |

Dependency rule (acyclic; tests/scheduling/test_scheduling_exports.py checks it):

    scheduling → requests, constellation, scheduler     (and clock, orbits, errors)
    requests   → scheduler (costs, models)              never scheduling
    scheduler  → nothing of orbitq.services             (pure, in memory)

`Requests` knows nothing of the loop: the loop works on the request store, reservations and
transition hub that `Requests` exposes, and a submission asks the broker for a cycle soon
through `Requests`' `on_submitted` callback.

Does not own: placement decisions (orbitq.services.scheduler), the request lifecycle, its
tables and its ledger transfers (orbitq.services.requests), or the stored world (the
constellation).
"""

from __future__ import annotations

from orbitq.services.scheduling.completion import ClockCompletion, Completion, ReceiptDeadline
from orbitq.services.scheduling.leader import LeaderLock
from orbitq.services.scheduling.loop import SchedulingLoop
from orbitq.services.scheduling.placing import displace_guard_seconds
from orbitq.services.scheduling.reports import AdvanceReport, CycleReport
from orbitq.services.scheduling.start import ClockStart, PulledTickets, Start, TicketStart

__all__ = [
    "AdvanceReport",
    "ClockCompletion",
    "ClockStart",
    "Completion",
    "CycleReport",
    "LeaderLock",
    "PulledTickets",
    "ReceiptDeadline",
    "SchedulingLoop",
    "Start",
    "TicketStart",
    "displace_guard_seconds",
]
