"""orbitq.services.sim: `orbitq sim`, a seeded day of work through a real in-process broker.

Owns: the simulation (issue 5; docs/scheduler.md "Simulation"). A Broker — the same one
`orbitq serve` runs, with its database, ledger, request service and scheduler — on a simulated
clock starting at the constellation's epoch; a fleet chosen from an element-set file; a
seeded workload from several tenants submitted through the request service; the broker's jobs
run every step to the end of the horizon; the §9 schedule document and a report.

| module | owns |
| --- | --- |
| `fleet` | which satellites, their hardware, the start instant |
| `workload` | tenants, their tokens, the seeded arrivals |
| `driver` | `run_simulation`: the broker, the world, the clock loop |
| `report` | the tally and `report.json` |

Does not own: files and arguments (orbitq.services.commands.sim) or any rule of the broker.
"""

from __future__ import annotations

from orbitq.services.sim.driver import (
    HOURS_MAX,
    HOURS_MIN,
    REQUESTS_MAX,
    SimResult,
    SimSettings,
    run_simulation,
)

__all__ = ["HOURS_MAX", "HOURS_MIN", "REQUESTS_MAX", "SimResult", "SimSettings", "run_simulation"]
