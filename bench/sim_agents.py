"""`orbitq sim` with one node agent per node against the same simulation without agents.

The target (issue 11): a simulated day of 300 nodes x 10,000 requests with agents — every
request's ticket signed and verified, its module run in the wasm sandbox, its receipt signed,
verified and settled — takes at most 1.5 x the wall time of the same day with settlement
"plan" (the clock completes placed work; no agent). Both runs use the same seed, fleet and
workload, one after the other in this process, on SQLite in a temporary directory.

Figures: wall seconds of each run and its parts (the report's wall_seconds_by_part), the
ratio agents / plan with its target, the same ratio in the process's CPU seconds (steadier on
a loaded machine; the target is on wall time), the load average at the end, and the agents'
counts (tickets, receipts, steps).

Environment: ORBITQ_BENCH_SIM_NODES, ORBITQ_BENCH_SIM_REQUESTS, ORBITQ_BENCH_SIM_HOURS override
the size (300, 10,000, 24) for a quicker run; the result records the size it ran.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from bench.common import peak_rss_mb, publish
from orbitq.services.orbits import bundled_path, load_bundled_elements
from orbitq.services.sim import SimSettings, run_simulation

NODES = int(os.environ.get("ORBITQ_BENCH_SIM_NODES", "300"))
REQUESTS = int(os.environ.get("ORBITQ_BENCH_SIM_REQUESTS", "10000"))
HOURS = float(os.environ.get("ORBITQ_BENCH_SIM_HOURS", "24"))
SEED = 1
STEP_SECONDS = 60
TARGET_RATIO = 1.5


def _run(settlement: str) -> tuple[float, float, dict[str, Any]]:
    settings = SimSettings(
        elements=tuple(load_bundled_elements("starlink")),
        stations_text=bundled_path("ground-stations").read_text(),
        nodes=NODES,
        requests=REQUESTS,
        hours=HOURS,
        seed=SEED,
        step_seconds=STEP_SECONDS,
        settlement=settlement,
    )
    began, cpu_began = time.perf_counter(), time.process_time()
    report = run_simulation(settings).report
    return time.perf_counter() - began, time.process_time() - cpu_began, report


def main() -> None:
    # The broker's warnings (tickets not pulled in time, ...) are counted in the report.
    logging.getLogger("orbitq").setLevel(logging.ERROR)
    plan_seconds, plan_cpu, plan = _run("plan")
    agents_seconds, agents_cpu, with_agents = _run("receipts")
    agents = with_agents["agents"]
    ratio = agents_seconds / plan_seconds
    publish(
        "sim_agents",
        {
            "benchmark": "sim_agents",
            "nodes": NODES,
            "requests": REQUESTS,
            "hours": HOURS,
            "step_seconds": STEP_SECONDS,
            "plan_wall_seconds": round(plan_seconds, 2),
            "plan_parts": plan["wall_seconds_by_part"],
            "plan_completed": plan["requests"]["completed"],
            "agents_wall_seconds": round(agents_seconds, 2),
            "agents_parts": with_agents["wall_seconds_by_part"],
            "agents_completed": with_agents["requests"]["completed"],
            "tickets_issued": agents["tickets_issued"],
            "receipts_verified": agents["receipts_verified"],
            "settling_transfers": agents["settling_transfers"],
            "settling_transfers_with_receipt_hash": agents["settling_transfers_with_receipt_hash"],
            "agent_steps": agents["agent_steps"],
            "agent_calls": agents["calls"],
            "wall_ratio_agents_over_plan": round(ratio, 3),
            # CPU seconds of the process (all its threads): steadier than wall time on a
            # loaded machine, but blind to waits for fsync, which wall time counts.
            "plan_cpu_seconds": round(plan_cpu, 2),
            "agents_cpu_seconds": round(agents_cpu, 2),
            "cpu_ratio_agents_over_plan": round(agents_cpu / plan_cpu, 3),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "target_wall_ratio_max": TARGET_RATIO,
            "meets_target": ratio <= TARGET_RATIO,
            "peak_rss_mb": round(peak_rss_mb(), 1),
        },
    )


if __name__ == "__main__":
    main()
