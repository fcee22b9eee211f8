"""Scheduler benchmark: placement throughput and memory at constellation scale, and schedule
quality against CP-SAT's optimum, first-fit and random on small instances.

Scale: the first 6,000 satellites of the bundled Starlink snapshot, the first 20 bundled
stations, 24 h of real contacts from 2025-12-06T00:00:00Z (computed by
orbitq.services.orbits, not timed as placement), 100,000 requests arriving over the day,
placed by cycles every 5 simulated minutes (`rolling`, the way the broker runs it, pruning the
past every hour), and again all at once in one cycle (`burst`). Throughput counts only time
inside the scheduler (run_cycle and prune), not world generation.

Scale at 30,000 nodes (the size of the constellations being deployed next), 300,000 requests:
the bundled snapshot has ~9,000 satellites, so the world is synthetic — the first 6,000 real
satellites and four trailing copies of each flying its ground track 1,117 s apart (element
sets with shifted RAAN and mean anomaly), whose contacts are the originals' shifted by the lag
(computed once by SGP4; `trail_check` reports the error against SGP4 on the copies' own
elements: seconds); the 20 stations get 3x their antennas (3x the requests per station).
Rolling mode only, with the broker's rolling horizon: the world holds
10 h of contacts, extended hourly (a whole day for 30,000 nodes is 2.3 million contacts, which
the broker never holds at once).

Updates: at noon of each rolling day, the cost of one change to the live world — a node state
change, a node down, a contact in use moved 20 s — and, through a SQLite database of 6,000 and
30,000 nodes (bench/scheduler_updates.py), of SetNodeState's write and the next world sync.

Quality: 20 seeded instances (10 satellites of the 53° shell, 4 stations, 6 h of real contacts,
40-80 requests, contended), the
priority-weighted number of accepted requests (sum of priority + 1) of the scheduler, of a
first-fit baseline (submission order, first node that fits), of a random baseline (random
order, random feasible node), and of CP-SAT (10 s, 2 workers per instance; the exact model is
in bench/scheduler_cpsat.py).

`python -m bench.scheduler [--quick] [--no-quality]` prints one JSON object (every figure
beside its target: `ratio` >= 1 meets it) and writes bench/results/scheduler.json; each scale
part runs in its own process (`--part ...`) so its peak RSS is its own.
"""

from __future__ import annotations

import gc
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import scheduler_world as worlds
from bench.scheduler_cpsat import Instance, Solution, solve, weight
from bench.scheduler_updates import state_change_cost
from orbitq.services.orbits import (
    ElementSet,
    GroundStation,
    load_bundled_elements,
    load_bundled_stations,
)
from orbitq.services.scheduler import (
    Contact,
    Placement,
    Request,
    Scheduler,
    SchedulerConfig,
    default_profile,
)
from orbitq.services.scheduler.framework import Draft, RequestContext
from orbitq.services.scheduler.native import compiled

RESULTS = Path(__file__).resolve().parent / "results"
START = worlds.START  # 2025-12-06T00:00:00Z, the Starlink snapshot's epoch
DAY = 86_400
CYCLE_SECONDS = 300
PRUNE_EVERY_CYCLES = 12
PROBE_CYCLE = DAY // CYCLE_SECONDS // 2  # the update costs are measured at noon
ANTENNA_SCALE_30K = 3
HORIZON_HOURS_30K = 10  # requests need contacts up to ~8.5 h after they arrive
STATE_CHANGES = 40
PART_SECONDS_MAX = 3_600
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
        # `make compile`: the hot modules compiled with mypyc (same placements, faster).
        "compiled_modules": len(compiled()),
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


def scale_trailing(nodes: int, requests: int, horizon_hours: int) -> dict[str, Any]:
    """The rolling mode on `nodes` real and trailing-copy satellites (bench/scheduler_world.py),
    with the broker's rolling horizon: the world holds the contacts of the next
    `horizon_hours`, more are added every hour (timed apart, as `add_contacts_seconds`) and
    the past is pruned. The burst mode would need a whole day of contacts at once, which the
    broker never holds; it is measured at 6,000 nodes."""
    began = time.perf_counter()
    elements, sites, plan = worlds.trailing_copies(nodes, 6000, hours=24)
    computed = time.perf_counter() - began
    node_list = worlds.nodes_of(elements, seed=1)
    del elements
    # 3x the requests of the 6,000-node run on the same 20 stations would saturate their
    # antennas (then every search scans busy time): 3x the antennas keep the load per antenna.
    stations = worlds.stations_of(sites, antenna_scale=ANTENNA_SCALE_30K)
    arrivals = sorted(worlds.requests(requests, START, DAY, seed=3), key=lambda r: r.submitted_at)
    gc.collect()
    scheduler = Scheduler()
    horizon = horizon_hours * 3600
    began = time.perf_counter()
    scheduler.set_world(node_list, stations, plan.contacts(START, START + horizon))
    set_world = time.perf_counter() - began
    at_start = len(scheduler.world.contacts)
    figures = _simulate(scheduler, arrivals, burst=False, plan=plan, horizon=horizon)
    figures["set_world_seconds"] = round(set_world, 2)
    figures["peak_rss_mb"] = round(_rss_mb())
    return {
        "nodes": nodes,
        "stations": len(stations),
        "requests": requests,
        "horizon_hours": horizon_hours,
        "contacts_in_world_at_start": at_start,
        "antennas": sum(station.antennas for station in stations),
        "contacts_source": "the first 6,000 bundled Starlink satellites (SGP4) and trailing "
        "copies of them, their contacts shifted by the lag (bench/scheduler_world.py)",
        "trail_check": worlds.trail_check(20, 6, seed=5),
        "contacts_seconds": round(computed, 1),
        "compiled_modules": len(compiled()),
        "rolling": figures,
    }


def _simulate(
    scheduler: Scheduler,
    arrivals: list[Request],
    *,
    burst: bool,
    plan: worlds.TrailingPlan | None = None,
    horizon: int = 0,
) -> dict[str, Any]:
    pending: list[Request] = []
    index = 0
    unschedulable = examined = cycles = 0
    placed: set[str] = set()
    busy = busy_cpu = adding = 0.0
    now = START
    known_until = START + horizon
    reasons: dict[str, int] = {}
    probed: dict[str, Any] = {}
    for cycle in range(DAY // CYCLE_SECONDS + 1):
        if plan is not None and cycle % PRUNE_EVERY_CYCLES == 0 and cycle:
            began = time.perf_counter()
            scheduler.add_contacts(plan.contacts(known_until, now + horizon))
            known_until = now + horizon
            adding += time.perf_counter() - began
        if cycle % PRUNE_EVERY_CYCLES == 0:  # progress, hourly, on stderr
            print(f"{cycle // PRUNE_EVERY_CYCLES} h: {len(placed)} placed", file=sys.stderr)
        if not burst and cycle == PROBE_CYCLE:
            probed = update_costs(scheduler, now, seed=7)
        while index < len(arrivals) and (burst or arrivals[index].submitted_at <= now):
            pending.append(arrivals[index])
            index += 1
        began, began_cpu = time.perf_counter(), time.process_time()
        result = scheduler.run_cycle(pending, now)
        if cycle % PRUNE_EVERY_CYCLES == 0:
            scheduler.prune(now)
        busy += time.perf_counter() - began
        busy_cpu += time.process_time() - began_cpu
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
    figures: dict[str, Any] = {
        "cycles": cycles,
        "placements": len(placed),
        "unschedulable": unschedulable,
        "still_pending": len(pending),
        "seconds": round(busy, 2),
        "placements_per_s": round(len(placed) / busy) if busy else 0,
        # The same over this process's CPU time: what the code does when the 2 shared cores
        # are busy with other work (wall time counts the waits for a core too).
        "cpu_seconds": round(busy_cpu, 2),
        "placements_per_cpu_s": round(len(placed) / busy_cpu) if busy_cpu else 0,
        "nodes_examined_per_request": round(examined / max(1, len(placed) + unschedulable), 1),
        "unschedulable_reasons": reasons,
    }
    if plan is not None:
        figures["add_contacts_seconds"] = round(adding, 2)
    if probed:
        figures["updates"] = probed
    return figures


def update_costs(scheduler: Scheduler, now: int, seed: int, samples: int = 50) -> dict[str, Any]:
    """What one change costs the live world (milliseconds, median and max over `samples`):
    a node's state to degraded and back (nodes holding placements), a contact in use moved
    20 s later (its placements taken off and put back where they still fit), a node down (its
    unstarted placements released) and ready again. Run at noon of the rolling day; what it
    changed stays (<1% of nodes lose their unstarted work: placements already counted)."""
    rng = random.Random(seed)
    world = scheduler.world
    placements = scheduler.placements()
    busy = sorted({p.node for p in placements})
    used = sorted(
        {c for p in placements if p.uplink.at > now for c in (p.uplink.contact,)}
        & set(world.contacts)
    )

    def timed(action: Any) -> float:
        began = time.perf_counter()
        action()
        return (time.perf_counter() - began) * 1000

    toggles = []
    for node in rng.sample(busy, min(samples, len(busy))):
        toggles.append(timed(lambda n=node: scheduler.set_node_state(n, "degraded", now)))
        toggles.append(timed(lambda n=node: scheduler.set_node_state(n, "ready", now)))
    lost = 0
    moves = []
    for contact_id in rng.sample(used, min(samples, len(used))):
        ref = world.contacts[contact_id]
        moved = Contact(
            contact_id,
            world.nodes[ref.node].node.id,
            world.stations[ref.station].station.id,
            ref.start + 20,
            ref.end + 20,
        )
        began = time.perf_counter()
        lost += len(scheduler.replace_contacts([contact_id], [moved]))
        moves.append((time.perf_counter() - began) * 1000)
    downs = []
    for node in rng.sample(busy, min(samples, len(busy))):
        downs.append(timed(lambda n=node: scheduler.set_node_state(n, "down", now)))
        scheduler.set_node_state(node, "ready", now)

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "median_ms": round(statistics.median(values), 3) if values else 0.0,
            "max_ms": round(max(values), 3) if values else 0.0,
            "samples": len(values),
        }

    return {
        "placements_in_world": len(placements),
        "state_change": summary(toggles),
        "node_down": summary(downs),
        "contact_moved": {**summary(moves), "placements_lost": lost},
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


def _part(*args: str) -> dict[str, Any]:
    """One part in its own process: its peak RSS is its own, not the largest so far."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.scheduler", "--part", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=PART_SECONDS_MAX,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _run_part(args: list[str]) -> dict[str, Any]:
    kind = args[0]
    if kind == "scale":
        return scale(int(args[1]), int(args[2]))
    if kind == "trailing":
        return scale_trailing(int(args[1]), int(args[2]), int(args[3]))
    if kind == "state":
        return state_change_cost(int(args[1]), STATE_CHANGES, RESULTS)
    raise SystemExit(f"unknown part {kind!r}")


def _figure(value: float, target: float, *, at_most: bool = False) -> dict[str, Any]:
    """A measured figure beside its target; `ratio` >= 1 means the target is met."""
    ratio = (target / value if value else float("inf")) if at_most else value / target
    return {
        "value": value,
        "target": f"{'<=' if at_most else '>='} {target:g}",
        "ratio": round(ratio, 3),
        "met": ratio >= 1,
    }


def main() -> None:
    if "--part" in sys.argv:
        RESULTS.mkdir(exist_ok=True)
        print(json.dumps(_run_part(sys.argv[sys.argv.index("--part") + 1 :])))
        return
    quick = "--quick" in sys.argv
    small, large = (600, 3000) if quick else (6000, 30_000)
    report: dict[str, Any] = {"benchmark": "scheduler"}
    if "--no-quality" in sys.argv:  # the scale figures alone (quality: CP-SAT, minutes)
        report["quality"] = {"cpsat_ratio": 0.0, "skipped": True}
    else:
        report["quality"] = quality(3 if quick else 20, 2.0 if quick else 10.0)
    report["scale"] = _part("scale", str(small), str(10_000 if quick else 100_000))
    report["scale_30k"] = _part(
        "trailing", str(large), str(30_000 if quick else 300_000), str(HORIZON_HOURS_30K)
    )
    report["state_change_db"] = {
        str(small): _part("state", str(small)),
        str(large): _part("state", str(large)),
    }
    rolling, burst = report["scale"]["rolling"], report["scale"]["burst"]
    big = report["scale_30k"]["rolling"]
    report["figures"] = {
        f"placements_per_s_{small}_rolling": _figure(rolling["placements_per_s"], 4000),
        f"placements_per_s_{small}_burst": _figure(burst["placements_per_s"], 4000),
        f"placements_per_s_{large}_rolling": _figure(big["placements_per_s"], 4000),
        f"placements_per_cpu_s_{small}_rolling": _figure(rolling["placements_per_cpu_s"], 4000),
        f"placements_per_cpu_s_{small}_burst": _figure(burst["placements_per_cpu_s"], 4000),
        f"placements_per_cpu_s_{large}_rolling": _figure(big["placements_per_cpu_s"], 4000),
        f"peak_rss_mb_{small}": _figure(burst["peak_rss_mb"], 1024, at_most=True),
        f"peak_rss_mb_{large}": _figure(big["peak_rss_mb"], 2048, at_most=True),
        **{
            f"state_change_ms_{n}_db_sync": _figure(
                report["state_change_db"][str(n)]["sync_ms_median"], 50, at_most=True
            )
            for n in (small, large)
        },
        **{
            f"state_change_ms_{n}_in_world_max": _figure(
                part["updates"]["state_change"]["max_ms"], 50, at_most=True
            )
            for n, part in ((small, rolling), (large, big))
        },
        **{
            f"contact_moved_ms_{n}_max": _figure(
                part["updates"]["contact_moved"]["max_ms"], 50, at_most=True
            )
            for n, part in ((small, rolling), (large, big))
        },
        "cpsat_ratio": _figure(report["quality"]["cpsat_ratio"], 0.95),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scheduler.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"benchmark": "scheduler", "figures": report["figures"]}))


if __name__ == "__main__":
    main()
