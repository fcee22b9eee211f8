"""The story `orbitq demo` tells, chapter by chapter, through the public SDK only.

Tenants receive quota and move it; an overdraft is refused; real Starlink satellites and real
ground stations are imported and their contact windows computed; tenants submit work, which is
placed onto satellites, run, downlinked and settled in the ledger; and a tenant proves, against
the broker's signed checkpoint, that its settlement is in the log.

The broker runs on a shifted clock (from the Starlink snapshot's epoch, faster than real time),
so the client estimates the broker's "now" from when it started. Waiting on a live broker is a
bounded poll: this is a demo, not a test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from orbitq.clients import BrokerClient, FailedPreconditionError
from orbitq.clients.cli.registry import CommandError
from orbitq.clients.models import RequestSpec, ServiceRequest
from orbitq.services.demo.narrator import Narrator
from orbitq.services.demo.process import RunningBroker
from orbitq.services.orbits import STARLINK_BUNDLED_EPOCH, bundled_path

T = TypeVar("T")

# Simulated seconds per real second: the few hours of the story pass in about a minute.
CLOCK_RATE = 300
SATELLITES = 120
WAIT_SECONDS_MAX = 180.0
POLL_SECONDS = 0.2
BALANCE_COLUMNS = ["tenant", "cpu core-s", "storage MB-h", "link s"]


def init_flags() -> tuple[str, ...]:
    start = STARLINK_BUNDLED_EPOCH.strftime("%Y-%m-%dT%H:%M:%SZ")
    return ("--clock", f"shifted:{start}x{CLOCK_RATE}")


# Cycles every second, so placements and completions show up promptly at CLOCK_RATE.
# Settlement "plan": this story runs no node agents, so placed work runs as placed (the demo
# with real `orbitq agent` processes is built with the agent).
CONFIG_LINES = ("schedule_interval_seconds = 1", 'settlement = "plan"')


@dataclass
class Cast:
    operator: BrokerClient
    aurora: BrokerClient
    borealis: BrokerClient
    satellites: dict[str, str]
    stations: dict[str, str]


def tell(broker: RunningBroker, trust_dir: Path, say: Narrator) -> None:
    def client(key: str) -> BrokerClient:
        return BrokerClient(broker.target, key, ledger_key=broker.verifier_key, trust_dir=trust_dir)

    with client(broker.operator_key) as operator:
        keys = tenants_and_quota(operator, say)
        with client(keys["aurora"]) as aurora, client(keys["borealis"]) as borealis:
            transfer_and_overdraft(operator, aurora, say)
            satellites, stations = the_sky(operator, say)
            cast = Cast(operator, aurora, borealis, satellites, stations)
            requests = submit_work(cast, broker, say)
            placed(cast, requests, say)
            finished = settled(cast, requests, say)
            signed_ledger(cast, finished[0], say)


def _balances(client: BrokerClient, tenants: list[str]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for tenant in tenants:
        accounts = {account.kind: account for account in client.balances(tenant)}
        rows.append(
            {
                "tenant": tenant,
                "cpu core-s": accounts["cpu"].available,
                "storage MB-h": accounts["storage"].available,
                "link s": accounts["link"].available,
            }
        )
    return rows


def tenants_and_quota(operator: BrokerClient, say: Narrator) -> dict[str, str]:
    say.chapter("Tenants and their quota")
    operator.create_tenant("aurora", "Aurora Earth Imaging")
    operator.create_tenant("borealis", "Borealis Climate Lab")
    operator.mint("aurora", cpu=20_000, storage=60_000, link=3_000)
    operator.mint("borealis", cpu=12_000, storage=60_000, link=2_000)
    say.say(
        "The operator created two tenants and minted quota tokens for them: CPU time in "
        "core-seconds, storage in megabyte-hours and ground-contact time in seconds. Each kind "
        "is its own double-entry ledger; the tokens came out of the treasury."
    )
    say.table(_balances(operator, ["aurora", "borealis"]), BALANCE_COLUMNS)
    return {
        tenant: operator.issue_api_key("tenant", tenant, label="demo").api_key
        for tenant in ("aurora", "borealis")
    }


def transfer_and_overdraft(operator: BrokerClient, aurora: BrokerClient, say: Narrator) -> None:
    say.chapter("A transfer between tenants, and an overdraft refused")
    outcomes = aurora.transfer("borealis", cpu=1_200, link=100)
    say.say(
        "Aurora, with its own API key, gave Borealis 1,200 core-seconds and 100 link-seconds in "
        "one call; both kinds moved together, as a linked pair of transfers "
        f"({', '.join(outcome.result for outcome in outcomes)})."
    )
    try:
        aurora.transfer("borealis", cpu=100_000)
    except FailedPreconditionError as error:
        say.say(f"Then it tried to give away 100,000 core-seconds. Refused: {error.details}")
    else:
        raise CommandError("the overdraft was accepted: the ledger is broken")
    say.table(_balances(operator, ["aurora", "borealis"]), BALANCE_COLUMNS)


def _until(what: str, check: Callable[[], T | None]) -> T:
    deadline = time.monotonic() + WAIT_SECONDS_MAX
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(POLL_SECONDS)
    raise CommandError(f"the broker did not {what} within {WAIT_SECONDS_MAX:g} s")


def _clock(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%H:%M")


def the_sky(operator: BrokerClient, say: Narrator) -> tuple[dict[str, str], dict[str, str]]:
    say.chapter("The sky: real satellites, real ground stations")
    lines = bundled_path("starlink").read_text().splitlines()
    subset = "\n".join(lines[: 3 * SATELLITES]) + "\n"
    nodes = operator.import_nodes(
        subset, cpu_millicores=4_000, storage_mb=64_000, downlink_mbps=200, uplink_mbps=20
    )
    stations = operator.import_stations(bundled_path("ground-stations").read_text())
    say.say(
        f"The operator imported {nodes.created} Starlink satellites from CelesTrak element sets "
        f"of {STARLINK_BUNDLED_EPOCH:%Y-%m-%d} (each given a 4-core computer, 64 GB of storage "
        f"and a 200 Mbit/s downlink) and {stations.created} real ground stations (KSAT, ESA, "
        "NASA, AWS and more). The broker propagates every orbit with SGP4 and computes the "
        "contact windows: when each satellite is above each station's horizon mask."
    )
    contacts = _until(
        "compute contact windows", lambda: operator.list_contacts(page_size=1000).items or None
    )
    satellites = {node.id: node.name for node in operator.list_nodes(page_size=1000).items}
    names = {s.id: s.name for s in operator.list_stations(page_size=1000).items}
    say.say(f"The first contact windows of the day, of {len(contacts)}+ computed:")
    say.table(
        [
            {
                "satellite": satellites.get(contact.node, contact.node),
                "station": names.get(contact.station, contact.station),
                "aos": contact.aos.strftime("%H:%M:%S"),
                "los": contact.los.strftime("%H:%M:%S"),
                "max elev": f"{contact.max_elevation_deg:.0f} deg",
            }
            for contact in contacts[:5]
        ],
        ["satellite", "station", "aos", "los", "max elev"],
    )
    return satellites, names


def _broker_now(broker: RunningBroker) -> datetime:
    """The broker's shifted clock, as seen from here (it started a moment before we did)."""
    return STARLINK_BUNDLED_EPOCH + timedelta(
        seconds=(time.monotonic() - broker.started) * CLOCK_RATE
    )


def submit_work(cast: Cast, broker: RunningBroker, say: Narrator) -> list[ServiceRequest]:
    say.chapter("Service requests")
    now = _broker_now(broker)
    hour = timedelta(hours=1)
    work = [
        (
            cast.aurora,
            RequestSpec(
                name="wildfire-detect",
                workload="img:wildfire-v3",
                cpu_millicores=2_000,
                run_seconds=900,
                storage_mb=2_000,
                input_mb=20,
                output_mb=300,
                deadline=now + 3 * hour,
                priority=5,
            ),
        ),
        (
            cast.aurora,
            RequestSpec(
                name="ship-tracking",
                workload="img:ais-fuse",
                cpu_millicores=1_000,
                run_seconds=600,
                storage_mb=500,
                output_mb=120,
                deadline=now + 4 * hour,
                station_countries=("NO", "SE", "FI"),
            ),
        ),
        (
            cast.borealis,
            RequestSpec(
                name="ice-thickness",
                workload="sar:ice-2",
                cpu_millicores=3_000,
                run_seconds=1_200,
                storage_mb=8_000,
                output_mb=900,
                deadline=now + 5 * hour,
                priority=2,
            ),
        ),
        (
            cast.borealis,
            RequestSpec(
                name="ozone-profile",
                workload="spec:oz-1",
                cpu_millicores=500,
                run_seconds=300,
                storage_mb=200,
                output_mb=40,
                deadline=now + 3 * hour,
            ),
        ),
    ]
    requests = []
    for client, spec in work:
        submitted = client.submit(spec).request
        requests.append(submitted)
        where = (
            f", down only through stations in {'/'.join(spec.station_countries)}"
            if spec.station_countries
            else ""
        )
        say.say(
            f"{submitted.tenant} submitted {spec.name}: {spec.cpu_millicores / 1000:g} core(s) for "
            f"{spec.run_seconds // 60} min, {spec.output_mb} MB of results{where}, by "
            f"{_clock(spec.deadline)}. Reserved (cpu/storage/link): "
            f"{submitted.reserved.cpu}/{submitted.reserved.storage}/{submitted.reserved.link}."
        )
    too_big = RequestSpec(
        name="global-reanalysis",
        workload="wx:era5",
        cpu_millicores=4_000,
        run_seconds=6 * 3600,
        storage_mb=60_000,
        output_mb=5_000,
        deadline=now + 10 * hour,
    )
    try:
        cast.borealis.submit(too_big)
    except FailedPreconditionError as error:
        say.say(f"Borealis also asked for a six-hour reanalysis. Refused: {error.details}")
    else:
        raise CommandError("a request beyond the tenant's quota was accepted")
    say.say(
        "Each accepted submission reserved its worst-case cost: linked pending transfers from "
        "the tenant into escrow, which expire by themselves after the deadline if nothing "
        "settles them first. Available balances now:"
    )
    say.table(_balances(cast.operator, ["aurora", "borealis"]), BALANCE_COLUMNS)
    return requests


def _reached(
    client: BrokerClient, request_id: str, states: tuple[str, ...]
) -> ServiceRequest | None:
    request = client.get_request(request_id)
    if request.state in states:
        return request
    if request.terminal:
        raise CommandError(f"request {request.spec.name} ended {request.state}: {request.reason}")
    return None


def placed(cast: Cast, requests: list[ServiceRequest], say: Narrator) -> None:
    say.chapter("Placed onto satellites")
    rows: list[dict[str, object]] = []
    for submitted in requests:
        request = _until(
            "place the requests",
            lambda rid=submitted.id: _reached(  # type: ignore[misc]
                cast.operator, rid, ("placed", "running", "completed")
            ),
        )
        placement = request.placement
        assert placement is not None
        down = placement.downlink[0] if placement.downlink else None
        rows.append(
            {
                "request": request.spec.name,
                "satellite": cast.satellites.get(placement.node, placement.node),
                "uplink": f"{_clock(placement.uplink_at)} "
                f"{cast.stations.get(placement.uplink_station, placement.uplink_station)}",
                "runs": f"{_clock(placement.start)}-{_clock(placement.end)}",
                "downlink": f"{_clock(down.start)} {cast.stations.get(down.station, down.station)}"
                if down
                else "-",
            }
        )
    say.say(
        "A scheduling cycle placed each request on a satellite with the cpu and storage free "
        "for its run, an uplink contact before it starts (the work must reach the satellite) "
        "and downlink contacts after it ends, before the deadline; the Nordic-only request "
        "comes down through a Nordic station:"
    )
    say.table(rows, ["request", "satellite", "uplink", "runs", "downlink"])


def settled(cast: Cast, requests: list[ServiceRequest], say: Narrator) -> list[ServiceRequest]:
    say.chapter("Work done, tokens settled")
    finished = [
        _until(
            "complete the requests",
            lambda rid=request.id: _reached(cast.operator, rid, ("completed",)),  # type: ignore[misc]
        )
        for request in requests
    ]
    say.say(
        f"The broker's clock runs {CLOCK_RATE} times faster than ours: the work ran, its results "
        "came down, and each completion posted the actual cost out of the reservation, moved it "
        "from escrow to consumed, and returned the rest to the tenant."
    )
    say.table(
        [
            {
                "request": r.spec.name,
                "reserved": f"{r.reserved.cpu}/{r.reserved.storage}/{r.reserved.link}",
                "charged": f"{r.settled.cpu}/{r.settled.storage}/{r.settled.link}",
            }
            for r in finished
        ],
        ["request", "reserved", "charged"],
    )
    system = {(a.system, a.kind): a for a in cast.operator.balances(system=True)}

    def net(name: str, kind: str) -> int:
        account = system[(name, kind)]
        return account.credits_posted - account.debits_posted + account.credits_pending

    say.say("Escrow is empty again; what was used sits in consumed:")
    say.table(
        [
            {"account": name, **{kind: net(name, kind) for kind in ("cpu", "storage", "link")}}
            for name in ("escrow", "consumed")
        ],
        ["account", "cpu", "storage", "link"],
    )
    say.table(_balances(cast.operator, ["aurora", "borealis"]), BALANCE_COLUMNS)
    flows = cast.operator.list_transfers("aurora", kind="storage", page_size=50).items
    say.say(
        "Aurora's storage ledger, oldest first: each reservation held the worst case (storage "
        "until the deadline); each settlement posted only what was held, and the rest returned:"
    )
    say.table(
        [
            {
                "time": _clock(datetime.fromtimestamp(t.timestamp_ns / 1e9, UTC)),
                "code": t.code,
                "amount": t.amount,
                "flags": ",".join(sorted(t.flags)) or "-",
            }
            for t in reversed(flows)
        ],
        ["time", "code", "amount", "flags"],
    )
    return finished


def signed_ledger(cast: Cast, request: ServiceRequest, say: Narrator) -> None:
    say.chapter("The signed ledger")
    settlement = next(
        t
        for t in cast.aurora.list_transfers(code="settle", page_size=50).items
        if t.user_data.hex() == request.id
    )
    proof = cast.aurora.prove_transfer(settlement.id, wait_seconds=10)
    checkpoint = proof.checkpoint
    say.say(
        "Every account creation and transfer is an entry in a Merkle log, signed in checkpoints "
        f"with the broker's Ed25519 key. Aurora's client verified the latest checkpoint (a tree "
        f"of {checkpoint.size} entries) against the pinned key and against the last checkpoint "
        f"it had trusted, then proved that the settlement of {request.spec.name} is entry "
        f"{proof.index}, with {len(proof.hashes)} hashes. A broker that rewrote history would "
        "fail this very check. The checkpoint, in the C2SP format transparency-log tools read:"
    )
    print()
    say.block(checkpoint.note)
