"""`run_simulation`: a real broker, in-process, on a simulated clock, through a seeded day.

Owns: the run itself. A throw-away data directory and database (SQLite by default, or any
database URL, fresh), a Broker built exactly as `orbitq serve` builds one but with a
SimulatedClock and a seeded source of request ids; the fleet and stations imported and the
contact plan computed through the constellation service; tenants created and minted through
the tenant and quota services; every request submitted through `Requests.submit` as its
tenant, at its arrival instant; and the broker's own jobs — expiry of reservations, time-driven
transitions, a scheduling cycle — called every `step_seconds` of simulated time, as
APScheduler calls them in `serve`. With settlement "receipts" (the default) one real node
agent per node (agents.py) pulls its tickets inside its contacts, runs the cheap module in the
sandbox, downlinks the result and reports a signed usage receipt, which completes and settles
the request; every agent due before a broker pass or an arrival steps first, in time order.
With settlement "plan" placed work completes on time, as placed, and no agent runs.

Does not own: the workload (workload.py), the fleet (fleet.py), the report (report.py) or
files and arguments (orbitq.services.commands.sim).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from orbitq.services.auth import SYSTEM, Principal
from orbitq.services.broker import Broker, init_data_dir
from orbitq.services.clock import NANOS_PER_SECOND, SimulatedClock, from_ns, to_ns
from orbitq.services.config import load_config
from orbitq.services.db.engine import create_engine
from orbitq.services.errors import FailedPreconditionError, InvalidArgumentError
from orbitq.services.identity.api_keys import Role
from orbitq.services.orbits import ElementSet
from orbitq.services.quota import new_operation_id
from orbitq.services.sim.agents import SimAgents, sim_module
from orbitq.services.sim.fleet import Fleet, choose_fleet
from orbitq.services.sim.report import Tally, build_report
from orbitq.services.sim.workload import PROFILES, Arrival, Workload, generate

ORIGIN = "sim.orbitq.local/ledger"
# Limits on one run: the contact plan's horizon, and what finishes in minutes on a laptop.
HOURS_MIN = 2.0
HOURS_MAX = 168.0
REQUESTS_MAX = 100_000
STEP_SECONDS_MIN = 10
STEP_SECONDS_MAX = 3_600
SETTLEMENTS = ("receipts", "plan")
# How often the simulated broker counts nodes' missed contacts (serve: node_health_interval).
# Coarser than serve's minute: each count touches every node, and a node is degraded only
# after contacts missed, which are minutes apart anyway.
NODE_HEALTH_SECONDS = 900
# The scheduler's notice of new work (config ticket_pull_notice_seconds; docs/agent.md,
# "Pulling less"): work is placed to begin at least this long after its cycle.
PULL_NOTICE_SECONDS = 120


@dataclass(frozen=True)
class SimSettings:
    elements: tuple[ElementSet, ...]
    stations_text: str
    nodes: int
    requests: int
    hours: float
    seed: int
    step_seconds: int = 60
    # A fresh database (nothing of orbitq in it yet); default: SQLite in a temporary directory.
    db_url: str | None = None
    # "receipts": node agents run the work and their receipts settle it; "plan": the clock does.
    settlement: str = "receipts"

    def problems(self) -> list[str]:
        """What is wrong with these settings, in words a person can act on."""
        wrong = []
        if not 1 <= self.nodes <= len(self.elements):
            wrong.append(f"--nodes must be 1..{len(self.elements)} (the element sets given)")
        if not 0 <= self.requests <= REQUESTS_MAX:
            wrong.append(f"--requests must be 0..{REQUESTS_MAX:,}")
        if not HOURS_MIN <= self.hours <= HOURS_MAX:
            wrong.append(f"--hours must be {HOURS_MIN:g}..{HOURS_MAX:g}")
        if not STEP_SECONDS_MIN <= self.step_seconds <= STEP_SECONDS_MAX:
            wrong.append(f"--step must be {STEP_SECONDS_MIN}..{STEP_SECONDS_MAX} seconds")
        if not 0 <= self.seed < 2**63:
            wrong.append("--seed must be 0..2^63-1")
        if self.settlement not in SETTLEMENTS:
            wrong.append(f"--settlement must be one of {', '.join(SETTLEMENTS)}")
        if self.db_url is not None:
            wrong.extend(_database_problems(self.db_url))
        return wrong


def _database_problems(db_url: str) -> list[str]:
    """A simulation creates its own tenants and ledger: it needs an empty database."""
    try:
        engine = create_engine(db_url)
    except ValueError as error:
        return [f"--db: {error}"]
    try:
        tables = sa.inspect(engine).get_table_names()
    except sa.exc.SQLAlchemyError as error:
        return [f"--db: cannot open the database: {error.__class__.__name__}: {error}"[:500]]
    finally:
        engine.dispose()
    if tables:
        return [f"--db holds {len(tables)} table(s) already; give an empty database"]
    return []


@dataclass
class SimResult:
    schedule: dict[str, Any]
    report: dict[str, Any]


@dataclass
class _Run:
    """What the run counts as it goes (the report reads it at the end)."""

    broker: Broker
    clock: SimulatedClock
    fleet: Fleet
    workload: Workload
    tally: Tally = field(default_factory=Tally)
    # Settlement "receipts": the agents, and the digest of the module every request names.
    agents: SimAgents | None = None
    module: str = ""
    health_checked: datetime | None = None


def run_simulation(
    settings: SimSettings,
    progress: Callable[[str], None] | None = None,
    elapsed: Callable[[int, int], None] | None = None,
) -> SimResult:
    """Run the simulation; raises ValueError for bad settings. `progress` gets a line of news
    at each tenth of the horizon, `elapsed` (simulated seconds done, in all) at each step."""
    wrong = settings.problems()
    if wrong:
        raise ValueError("; ".join(wrong))
    say = progress or (lambda _: None)
    began = time.perf_counter()
    fleet = choose_fleet(settings.elements, settings.nodes, settings.seed)
    end = fleet.start + timedelta(hours=settings.hours)
    clock = SimulatedClock(fleet.start)
    with tempfile.TemporaryDirectory(prefix="orbitq-sim-", dir=scratch_parent()) as scratch:
        broker = _broker(Path(scratch), settings, clock)
        run: _Run | None = None
        try:
            setup_began = time.perf_counter()
            run = _Run(broker, clock, fleet, _world(broker, fleet, settings, end))
            if settings.settlement == "receipts":
                run.module = _push_module(broker)
                nodes = sorted(node.id for node in broker.constellation.nodes())
                run.agents = SimAgents(
                    broker, nodes, Path(scratch), settings.seed, clock, settings.step_seconds
                )
            run.tally.seconds["setup"] = time.perf_counter() - setup_began
            say(
                f"{settings.nodes} nodes, {len(broker.constellation.stations())} stations, "
                f"{settings.requests} requests over {settings.hours:g} h from "
                f"{fleet.start:%Y-%m-%dT%H:%M}Z"
            )
            _drive(run, end, settings.step_seconds, say, elapsed or (lambda _done, _all: None))
            schedule = broker.scheduling.schedule_document(fleet.start, end)
            report = build_report(
                broker,
                run.tally,
                schedule,
                settings,
                run.workload.minted,
                fleet.start,
                end,
                began,
                run.agents,
            )
        finally:
            if run is not None and run.agents is not None:
                run.agents.close()
            broker.scheduling.close()
            broker.requests.close()
            broker.writer.stop()
            broker.engine.dispose()
    return SimResult(schedule, report)


# RAM-backed scratch when there is room: a simulated day with agents makes and removes a few
# thousand run directories and files, and on a disk whose journal is busy each removal waited
# milliseconds (measured: 2.2 s against 0.07 s for 500 runs' trees on this machine's ext4 and
# tmpfs). The run's database and files die with it, so RAM loses nothing a disk would keep.
SHM_DIR = Path("/dev/shm")  # noqa: S108 (only mkdtemp's private 0700 directory goes there)
SHM_FREE_BYTES_MIN = 4 * 1024**3


def scratch_parent() -> Path | None:
    """Where the run's scratch directory goes: TMPDIR when the user set it, else /dev/shm when
    it is a writable directory with at least 4 GiB free, else the system's default (None)."""
    if os.environ.get("TMPDIR"):
        return None
    try:
        usable = SHM_DIR.is_dir() and os.access(SHM_DIR, os.W_OK | os.X_OK)
        if usable and shutil.disk_usage(SHM_DIR).free >= SHM_FREE_BYTES_MIN:
            return SHM_DIR
    except OSError:
        return None
    return None


def _broker(scratch: Path, settings: SimSettings, clock: SimulatedClock) -> Broker:
    data_dir = scratch / "broker"
    init_data_dir(data_dir, origin=ORIGIN, db_url=settings.db_url, clock=clock)
    config = replace(
        load_config(data_dir, db_url=settings.db_url),
        contact_horizon_hours=settings.hours,
        settlement=settings.settlement,
        # Notice of new work, in both settlements (the same schedule either way): an agent
        # then pulls when something can be due for it, not every few seconds of a contact.
        ticket_pull_notice_seconds=PULL_NOTICE_SECONDS,
        # The database dies with the run: flushing each commit to disk would only cost time
        # (a simulated day commits thousands of times, a few ms each here).
        durable=False,
    )
    # Request ids from the seed, so the same seed gives the same schedule document.
    ids = random.Random(f"request-ids/{settings.seed}")  # noqa: S311 (ids, not secrets)

    def request_id() -> str:
        return f"{ids.randrange(1, 2**128 - 1):032x}"

    broker = Broker(config, clock, request_ids=request_id)
    broker.writer.start()
    return broker


def _world(broker: Broker, fleet: Fleet, settings: SimSettings, end: datetime) -> Workload:
    """Nodes, stations, the contact plan, tenants and their tokens; the workload to submit."""
    broker.constellation.import_nodes(SYSTEM, fleet.node_import())
    broker.constellation.import_stations(SYSTEM, settings.stations_text)
    broker.constellation.refresh_contacts(fleet.start, settings.hours)
    countries = sorted(
        {s.labels["country"] for s in broker.constellation.stations() if "country" in s.labels}
    )
    workload = generate(
        settings.seed,
        settings.requests,
        to_ns(fleet.start) // NANOS_PER_SECOND,
        to_ns(end) // NANOS_PER_SECOND,
        countries,
        fleet.slowest_downlink_mbps,
    )
    for profile in PROFILES:
        broker.tenants.create(SYSTEM, profile.name, profile.display_name)
        broker.quota.mint(SYSTEM, profile.name, workload.minted[profile.name], new_operation_id())
    return workload


def _push_module(broker: Broker) -> str:
    """Each tenant pushes the cheap module (a blob is its owner's); its content address."""
    module = sim_module()
    digests = {
        broker.blobs.push_workload(SYSTEM, module, profile.name).digest for profile in PROFILES
    }
    (digest,) = digests
    return digest


def _drive(
    run: _Run,
    end: datetime,
    step_seconds: int,
    say: Callable[[str], None],
    elapsed: Callable[[int, int], None],
) -> None:
    """Arrivals at their instants; the broker's jobs every step; a last pass at the end."""
    arrivals = run.workload.arrivals
    step = timedelta(seconds=step_seconds)
    tick = run.fleet.start + step
    next_arrival = 0
    reported_tenth = 0
    # Bounded: one pass per step of the horizon, each arrival submitted once.
    while True:
        at = min(tick, end)
        if next_arrival < len(arrivals):
            arrival = arrivals[next_arrival]
            arrives = from_ns(arrival.at * NANOS_PER_SECOND)
            if arrives <= at:
                _agents_until(run, arrives)
                run.clock.set(max(run.clock.now(), arrives))
                _submit(run, arrival)
                next_arrival += 1
                continue
        _agents_until(run, at)
        run.clock.set(max(run.clock.now(), at))
        _pass(run)
        elapsed(
            int((at - run.fleet.start).total_seconds()),
            int((end - run.fleet.start).total_seconds()),
        )
        tenth = int(10 * (at - run.fleet.start) / (end - run.fleet.start))
        if tenth > reported_tenth:
            reported_tenth = tenth
            say(f"{at:%Y-%m-%dT%H:%M}Z  {run.tally.line()}")
        if at >= end:
            return
        tick += step


def _agents_until(run: _Run, instant: datetime) -> None:
    if run.agents is None:
        return
    began = time.perf_counter()
    run.agents.step_until(instant)
    run.tally.seconds["agents"] += time.perf_counter() - began


def _submit(run: _Run, arrival: Arrival) -> None:
    tenant = Principal(key_id=f"sim-{arrival.tenant}", role=Role.TENANT, tenant=arrival.tenant)
    began = time.perf_counter()
    # With agents the request names the module they run (the workload's name is for people).
    spec = replace(arrival.spec, workload=run.module) if run.module else arrival.spec
    try:
        stored, _ = run.broker.requests.submit(tenant, spec, arrival.idempotency_key)
    except FailedPreconditionError as error:
        # "insufficient cpu tokens: aurora has ..." -> "insufficient cpu tokens"
        run.tally.refused[str(error).split(":", 1)[0]] += 1
    except InvalidArgumentError:
        run.tally.refused["invalid request"] += 1
    else:
        run.tally.submitted[stored.state.label] += 1
    run.tally.seconds["submit"] += time.perf_counter() - began


def _pass(run: _Run) -> None:
    began = time.perf_counter()
    run.broker.expire_due()
    now = run.clock.now()
    if run.agents is not None and (
        run.health_checked is None
        or now >= run.health_checked + timedelta(seconds=NODE_HEALTH_SECONDS)
    ):
        run.broker.check_nodes()
        run.health_checked = now
    advance, cycle = run.broker.scheduling.tick()
    tally = run.tally
    tally.cycles += 1
    tally.placed += len(cycle.placed)
    tally.displaced += len(cycle.displaced)
    tally.completed += len(advance.completed)
    if run.agents is not None:  # receipts complete the work, not the clock
        tally.completed = run.agents.tally.events["receipt acknowledged"]
    tally.seconds["cycles"] += time.perf_counter() - began
