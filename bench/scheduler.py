"""Scheduler benchmark: placement throughput and memory at constellation scale, and schedule
quality against CP-SAT's optimum, first-fit and random on small instances.

Scale: the first 6,000 satellites of the bundled Starlink snapshot, the first 20 bundled
stations, 24 h of real contacts from 2025-12-06T00:00:00Z (computed by
orbitq.services.orbits, not timed as placement), 100,000 requests arriving over the day,
placed by cycles every 5 simulated minutes (`rolling`, the way the broker runs it, pruning the
past every hour), and again all at once in one cycle (`burst`). Throughput counts only time
inside the scheduler (run_cycle and prune), not world generation.

Quality: 20 seeded instances (10 satellites of the 53° shell, 4 stations, 6 h of real contacts,
40-80 requests, contended), the
priority-weighted number of accepted requests (sum of priority + 1) of the scheduler, of a
first-fit baseline (submission order, first node that fits), of a random baseline (random
order, random feasible node), and of CP-SAT (10 s, 2 workers per instance; the exact model is
in bench/scheduler_cpsat.py).

`python -m bench.scheduler [--quick]` prints one JSON object and writes
bench/results/scheduler.json.
"""

from __future__ import annotations

import gc
import json
import random
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import scheduler_world as worlds
from bench.scheduler_cpsat import Instance, Solution, solve, weight
from orbitq.services.orbits import (
    ElementSet,
    GroundStation,
    load_bundled_elements,
    load_bundled_stations,
)
from orbitq.services.scheduler import (
    Placement,
    Request,
    Scheduler,
    SchedulerConfig,
    default_profile,
)
from orbitq.services.scheduler.framework import Draft, RequestContext

RESULTS = Path(__file__).resolve().parent / "results"
START = worlds.START  # 2025-12-06T00:00:00Z, the Starlink snapshot's epoch
DAY = 86_400
CYCLE_SECONDS = 300
PRUNE_EVERY_CYCLES = 12
QUALITY_HOURS = 6


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scale(nodes: int, requests: int) -> dict[str, Any]:
    began = time.perf_counter()
    elements, sites, contacts = worlds.starlink(nodes, hours=24)
    computed = time.perf_counter() - began
    node_list = worlds.nodes_of(elements, seed=1)
    stations = worlds.stations_of(sites)
    arrivals = sorted(worlds.requests(requests, START, DAY, seed=3), key=lambda r: r.submitted_at)
    out: dict[str, Any] = {
        "nodes": nodes,
        "stations": len(stations),
        "contacts": len(contacts),
        "requests": requests,
        "horizon_hours": 24,
        "contacts_source": "orbitq.services.orbits on the bundled Starlink snapshot, "
        "first satellites and first 20 bundled stations, from 2025-12-06T00:00:00Z",
        "contacts_seconds": round(computed, 1),
    }
    del elements
    for mode in ("rolling", "burst"):
        gc.collect()
        scheduler = Scheduler()
        began = time.perf_counter()
        scheduler.set_world(node_list, stations, contacts)
        set_world = time.perf_counter() - began
        figures = _simulate(scheduler, arrivals, burst=mode == "burst")
        figures["set_world_seconds"] = round(set_world, 2)
        figures["peak_rss_mb"] = round(_rss_mb())
        out[mode] = figures
        del scheduler
    return out


def _simulate(scheduler: Scheduler, arrivals: list[Request], *, burst: bool) -> dict[str, Any]:
    pending: list[Request] = []
    index = 0
    unschedulable = examined = cycles = 0
    placed: set[str] = set()
    busy = 0.0
    now = START
    reasons: dict[str, int] = {}
    for cycle in range(DAY // CYCLE_SECONDS + 1):
        while index < len(arrivals) and (burst or arrivals[index].submitted_at <= now):
            pending.append(arrivals[index])
            index += 1
        began = time.perf_counter()
        result = scheduler.run_cycle(pending, now)
        if cycle % PRUNE_EVERY_CYCLES == 0:
            scheduler.prune(now)
        busy += time.perf_counter() - began
        cycles += 1
        placed.update(p.request for p in result.placed)
        unschedulable += len(result.unschedulable)
        examined += result.nodes_examined
        for unplaced in result.unschedulable:
            reason = unplaced.reasons[0].reason
            reasons[reason] = reasons.get(reason, 0) + 1
        waiting = {u.request for u in result.pending}
        pending = [r for r in pending if r.id in waiting]
        if burst:
            break
        now += CYCLE_SECONDS
    return {
        "cycles": cycles,
        "placements": len(placed),
        "unschedulable": unschedulable,
        "still_pending": len(pending),
        "seconds": round(busy, 2),
        "placements_per_s": round(len(placed) / busy) if busy else 0,
        "nodes_examined_per_request": round(examined / max(1, len(placed) + unschedulable), 1),
        "unschedulable_reasons": reasons,
    }


# -- quality ---------------------------------------------------------------------------------


class RandomScore:
    """Score plugin of the random baseline: any feasible node, uniformly."""

    name = "random"

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def score(self, ctx: RequestContext, drafts: Sequence[Draft]) -> list[int]:
        return [self._rng.randint(0, 100) for _ in drafts]


def small_instance(
    seed: int, pool: Sequence[ElementSet], sites: Sequence[GroundStation]
) -> Instance:
    nodes, stations, contacts, requests = worlds.small_world(seed, pool, sites, QUALITY_HOURS)
    return Instance(seed, START, START + QUALITY_HOURS * 3600, nodes, stations, contacts, requests)


def _value(requests: Sequence[Request], placed: set[str] | frozenset[str]) -> int:
    return sum(weight(r) for r in requests if r.id in placed)


def _scheduler(instance: Instance, config: SchedulerConfig, scores: Any = None) -> Scheduler:
    scheduler = Scheduler(config, default_profile(scores) if scores is not None else None)
    scheduler.set_world(instance.nodes, instance.stations, instance.contacts)
    return scheduler


def run_ours(instance: Instance) -> list[Placement]:
    scheduler = _scheduler(instance, SchedulerConfig())
    scheduler.run_cycle(instance.requests, now=instance.start)
    return scheduler.placements()


def run_one_by_one(
    instance: Instance, order: list[Request], config: SchedulerConfig, scores: Any
) -> set[str]:
    scheduler = _scheduler(instance, config, scores)
    for request in order:
        scheduler.run_cycle([request], now=instance.start)
    return {p.request for p in scheduler.placements()}


def quality(instances: int, seconds: float) -> dict[str, Any]:
    rows = []
    pool = load_bundled_elements("starlink")[:6000]
    sites = load_bundled_stations()[:20]
    for seed in range(instances):
        instance = small_instance(1000 + seed, pool, sites)
        began = time.perf_counter()
        ours = run_ours(instance)
        ours_seconds = time.perf_counter() - began
        placed = {p.request for p in ours}
        first_fit = run_one_by_one(
            instance,
            sorted(instance.requests, key=lambda r: (r.submitted_at, r.id)),
            SchedulerConfig(feasible_nodes_to_score=1, rotate=False, preemption=False),
            (),
        )
        shuffled = list(instance.requests)
        random.Random(seed).shuffle(shuffled)
        chance = run_one_by_one(
            instance,
            shuffled,
            SchedulerConfig(
                feasible_nodes_to_score=len(instance.nodes), rotate=False, preemption=False
            ),
            ((RandomScore(seed), 1),),
        )
        best: Solution = solve(instance, ours, seconds=seconds, workers=2)
        value = _value(instance.requests, placed)
        rows.append(
            {
                "seed": instance.seed,
                "requests": len(instance.requests),
                "contacts": len(instance.contacts),
                "total_weight": _value(instance.requests, {r.id for r in instance.requests}),
                "scheduler": value,
                "scheduler_seconds": round(ours_seconds, 3),
                "cpsat": best.value,
                "cpsat_bound": round(best.bound, 1),
                "cpsat_optimal": best.optimal,
                "cpsat_seconds": round(best.seconds, 1),
                "first_fit": _value(instance.requests, first_fit),
                "random": _value(instance.requests, chance),
            }
        )
    return _summary(rows)


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def ratios(key: str) -> list[float]:
        return [row[key] / row["cpsat"] for row in rows if row["cpsat"]]

    ours = ratios("scheduler")
    to_bound = [row["scheduler"] / row["cpsat_bound"] for row in rows if row["cpsat_bound"]]
    return {
        "instances": len(rows),
        "cpsat_ratio": round(statistics.mean(ours), 4),
        "cpsat_ratio_min": round(min(ours), 4),
        "cpsat_bound_ratio": round(statistics.mean(to_bound), 4),
        "cpsat_proved_optimal": sum(1 for row in rows if row["cpsat_optimal"]),
        "first_fit_ratio": round(statistics.mean(ratios("first_fit")), 4),
        "random_ratio": round(statistics.mean(ratios("random")), 4),
        "acceptance_of_total_weight": round(
            sum(row["scheduler"] for row in rows) / sum(row["total_weight"] for row in rows), 4
        ),
        "per_instance": rows,
    }


def main() -> None:
    quick = "--quick" in sys.argv
    report: dict[str, Any] = {"benchmark": "scheduler"}
    report["quality"] = quality(3 if quick else 20, 2.0 if quick else 10.0)
    report["scale"] = scale(600 if quick else 6000, 10_000 if quick else 100_000)
    rolling = report["scale"]["rolling"]
    report["placements_per_s"] = rolling["placements_per_s"]
    report["peak_rss_mb"] = report["scale"]["burst"]["peak_rss_mb"]
    report["cpsat_ratio"] = report["quality"]["cpsat_ratio"]
    report["targets"] = {
        "placements_per_s": ">= 2000",
        "peak_rss_mb": "<= 1024",
        "cpsat_ratio": ">= 0.95",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scheduler.json").write_text(json.dumps(report, indent=2) + "\n")
    summary = {k: v for k, v in report.items() if k != "quality"}
    summary["quality"] = {k: v for k, v in report["quality"].items() if k != "per_instance"}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
