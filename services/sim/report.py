"""The simulation's report (`DIR/report.json`): what happened to the work, the fleet and tokens.

Owns: the running tally the driver keeps, and the report built at the end from what the
broker stored — each request's final state, its placement and its reservation — and from the
ledger's system accounts, which must agree with the requests (the report shows both):

- `requests`: submitted, `accepted` (a reservation was made), `rejected` by reason (refused at
  submission, e.g. "insufficient cpu tokens", and ended unschedulable, expired or failed, by the
  scheduler's reason with its figures taken out), `completed`, final states;
- `utilisation`: cpu (core-seconds run / core-seconds the fleet offers over the horizon),
  storage (MB-seconds held / offered), link (seconds of uplink and downlink / seconds in which
  some station sees the node, over all nodes: a node has one radio, so overlapping contacts
  of one node count once);
- `tokens`: reserved, settled, released and still held, per kind; the ledger's escrow and
  consumed accounts beside them;
- `scheduler`: cycles, placements made, displacements; `wall_seconds` with its parts;
- `agents` (settlement "receipts"): tickets issued and pulled, receipts verified and refused,
  settlements backed by a receipt (and any that were not: none should be), runs by outcome,
  refunds by cause (the operator at fault: released in full) and workload faults (charged),
  the agents' steps and calls.

Does not own: running the simulation (driver.py) or the schedule document (the request service).
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from orbitq.ledger.model import Code, Kind, Result, SystemAccount
from orbitq.services.agents.tables import RECEIPT_REFUSALS, TICKETS
from orbitq.services.auth import SYSTEM
from orbitq.services.clock import NANOS_PER_SECOND, to_ns
from orbitq.services.quota import TransferFilter
from orbitq.services.requests import RequestState, StoredRequest
from orbitq.services.requests.model import Fault
from orbitq.services.requests.reservations import amount_of
from orbitq.services.scheduler import rfc3339

if TYPE_CHECKING:
    from orbitq.services.broker import Broker
    from orbitq.services.sim.agents import SimAgents
    from orbitq.services.sim.driver import SimSettings

S = RequestState
REJECTED_STATES = (S.UNSCHEDULABLE, S.EXPIRED, S.FAILED)
_FIGURES = re.compile(r"[0-9][0-9,.:TZ-]*")
TRANSFERS_PAGE = 1_000
TRANSFER_PAGES_MAX = 10_000


@dataclass
class Tally:
    submitted: Counter[str] = field(default_factory=Counter)  # state right after Submit
    refused: Counter[str] = field(default_factory=Counter)  # Submit raised, by reason
    cycles: int = 0
    placed: int = 0
    displaced: int = 0
    completed: int = 0
    seconds: defaultdict[str, float] = field(
        default_factory=lambda: defaultdict(float)
    )  # wall time by part

    def line(self) -> str:
        accepted = self.submitted["pending"]
        refused = sum(self.refused.values()) + self.submitted["unschedulable"]
        return (
            f"accepted {accepted}, refused {refused}, placed {self.placed}, "
            f"displaced {self.displaced}, completed {self.completed}"
        )


def reason_category(reason: str) -> str:
    """A reason without its figures, so that like reasons count together: "no downlink contact
    before deadline (3 nodes had 120 s, 600 s needed)" -> "no downlink contact before deadline".
    """
    head = reason.split(";", 1)[0].split(" (", 1)[0]
    return _FIGURES.sub("N", head).strip() or "unknown"


def build_report(
    broker: Broker,
    tally: Tally,
    schedule: dict[str, Any],
    settings: SimSettings,
    minted: Mapping[str, Mapping[Kind, int]],
    start: datetime,
    end: datetime,
    began: float,
    agents: SimAgents | None = None,
) -> dict[str, Any]:
    requests = list(broker.requests.store.all())
    start_s = to_ns(start) // NANOS_PER_SECOND
    end_s = to_ns(end) // NANOS_PER_SECOND
    wall = time.perf_counter() - began
    return {
        "seed": settings.seed,
        "horizon": {"start": rfc3339(start_s), "end": rfc3339(end_s)},
        "nodes": len(schedule["nodes"]),
        "stations": len(schedule["stations"]),
        "minted": {
            tenant: {kind.label: amount for kind, amount in sorted(amounts.items())}
            for tenant, amounts in sorted(minted.items())
        },
        "requests": _requests(settings.requests, tally, requests),
        "utilisation": _utilisation(broker, requests, start, end, start_s, end_s),
        "tokens": _tokens(broker, requests),
        "scheduler": {
            "cycles": tally.cycles,
            "step_seconds": settings.step_seconds,
            "placements_made": tally.placed,
            "displaced": tally.displaced,
        },
        "settlement": settings.settlement,
        "agents": None if agents is None else _agents(broker, requests, agents),
        "wall_seconds": round(wall, 3),
        "wall_seconds_by_part": {part: round(s, 3) for part, s in sorted(tally.seconds.items())},
    }


def _requests(count: int, tally: Tally, requests: list[StoredRequest]) -> dict[str, Any]:
    states = Counter(r.state.label for r in requests)
    ended: Counter[str] = Counter()
    for request in requests:
        if request.state in REJECTED_STATES:
            ended[f"{request.state.label}: {reason_category(request.reason)}"] += 1
    refused = Counter({f"refused: {why}": n for why, n in tally.refused.items()})
    rejected = refused + ended
    return {
        "submitted": count,
        "accepted": tally.submitted["pending"],
        # Stored at once as unschedulable (no node could ever take them), nothing reserved.
        "unschedulable_at_submission": tally.submitted["unschedulable"],
        "rejected": sum(rejected.values()),
        "rejected_by_reason": dict(rejected.most_common()),
        "completed": states[S.COMPLETED.label],
        "final_states": dict(sorted(states.items())),
    }


def _agents(broker: Broker, requests: list[StoredRequest], agents: SimAgents) -> dict[str, Any]:
    with broker.engine.connect() as connection:
        issued = connection.execute(sa.select(sa.func.count()).select_from(TICKETS)).scalar_one()
        pulled = connection.execute(
            sa.select(sa.func.count()).select_from(TICKETS).where(TICKETS.c.pulled_ns.is_not(None))
        ).scalar_one()
        refused = Counter(
            str(reason)
            for (reason,) in connection.execute(sa.select(RECEIPT_REFUSALS.c.reason)).all()
        )
    settled = [r for r in requests if not r.reservation_open and r.charged]
    refunds: Counter[str] = Counter()
    charged_faults: Counter[str] = Counter()
    for request in requests:
        if request.state is S.FAILED and request.fault is Fault.OPERATOR:
            refunds[reason_category(request.reason)] += 1
        elif request.state is S.FAILED and request.fault is Fault.WORKLOAD:
            charged_faults[reason_category(request.reason)] += 1
    events = agents.tally.events
    receipts = {r.receipt_digest for r in requests if r.receipt_digest is not None}
    settling = list(_settling_user_data(broker))
    return {
        "nodes_enrolled": len(agents.agents),
        "tickets_issued": int(issued),
        "tickets_pulled": int(pulled),
        "receipts_verified": sum(1 for r in requests if r.receipt_digest is not None),
        "receipts_refused": dict(sorted(refused.items())),
        "settled_with_receipt": sum(1 for r in settled if r.receipt_digest is not None),
        "settled_without_receipt": sum(1 for r in settled if r.receipt_digest is None),
        # From the ledger: settling transfers, and those whose user_data is a receipt's SHA-256.
        "settling_transfers": len(settling),
        "settling_transfers_with_receipt_hash": sum(1 for u in settling if u in receipts),
        "runs_by_outcome": {
            event.removeprefix("run ended: "): n
            for event, n in sorted(events.items())
            if event.startswith("run ended: ")
        },
        "refunds_by_cause": dict(refunds.most_common()),
        "workload_faults_charged": dict(charged_faults.most_common()),
        "agent_steps": agents.tally.steps,
        "agent_events": dict(sorted(events.items())),
        "calls": agents.calls(),
    }


def _settling_user_data(broker: Broker) -> Iterable[bytes]:
    """The user_data of every SETTLE transfer in the ledger (newest first, page by page)."""
    before: int | None = None
    for _ in range(TRANSFER_PAGES_MAX):
        page = broker.quota.list_transfers(
            SYSTEM, TransferFilter(code=int(Code.SETTLE)), TRANSFERS_PAGE, before
        )
        for stored in page:
            if stored.result is Result.OK:
                yield stored.transfer.user_data
        if len(page) < TRANSFERS_PAGE:
            return
        before = page[-1].transfer.timestamp_ns
    raise AssertionError("more settling transfers than the report reads")


def _utilisation(
    broker: Broker,
    requests: list[StoredRequest],
    start: datetime,
    end: datetime,
    start_s: int,
    end_s: int,
) -> dict[str, float]:
    horizon = end_s - start_s
    nodes = broker.constellation.nodes()
    cpu_offered = sum(n.capacity.cpu_millicores for n in nodes) * horizon
    storage_offered = sum(n.capacity.storage_mb for n in nodes) * horizon
    cpu_used = storage_used = link_used = 0
    for request in requests:
        placement = request.placement
        if request.state not in (S.PLACED, S.RUNNING, S.COMPLETED) or placement is None:
            continue
        spec = request.spec
        cpu_used += spec.cpu_millicores * _inside(placement.start, placement.end, start_s, end_s)
        finish = max([placement.end, *(segment.end for segment in placement.downlink)])
        storage_used += spec.storage_mb * _inside(placement.start, finish, start_s, end_s)
        link_used += _inside(placement.uplink.at, placement.uplink.end, start_s, end_s)
        link_used += sum(
            _inside(segment.start, segment.end, start_s, end_s) for segment in placement.downlink
        )
    link_offered = _radio_seconds(broker, start, end, start_s, end_s)
    return {
        "cpu": _ratio(cpu_used, cpu_offered),
        "storage": _ratio(storage_used, storage_offered),
        "link": _ratio(link_used, link_offered),
        "contact_seconds": link_offered,
    }


def _radio_seconds(broker: Broker, start: datetime, end: datetime, lo: int, hi: int) -> int:
    """Seconds in [lo, hi) in which some station sees each node, summed over nodes."""
    by_node: dict[str, list[tuple[int, int]]] = {}
    for batch in broker.constellation.iter_contacts_between(start, end):
        for contact in batch:
            aos = max(lo, contact.aos_ns // NANOS_PER_SECOND)
            los = min(hi, -(-contact.los_ns // NANOS_PER_SECOND))
            if los > aos:
                by_node.setdefault(contact.node, []).append((aos, los))
    return sum(_union_length(intervals) for intervals in by_node.values())


def _union_length(intervals: Iterable[tuple[int, int]]) -> int:
    total = 0
    reach = None
    for begin, finish in sorted(intervals):
        if reach is None or begin > reach:
            total += finish - begin
            reach = finish
        elif finish > reach:
            total += finish - reach
            reach = finish
    return total


def _inside(begin: int, finish: int, lo: int, hi: int) -> int:
    return max(0, min(finish, hi) - max(begin, lo))


def _ratio(used: int, offered: int) -> float:
    return round(used / offered, 4) if offered else 0.0


def _tokens(broker: Broker, requests: list[StoredRequest]) -> dict[str, Any]:
    reserved: Counter[str] = Counter()
    settled: Counter[str] = Counter()
    released: Counter[str] = Counter()
    held: Counter[str] = Counter()
    for request in requests:
        for kind in Kind:
            amount = amount_of(request.reserved, kind)
            reserved[kind.label] += amount
            if request.reservation_open:
                held[kind.label] += amount
            else:
                spent = amount_of(request.settled, kind)
                settled[kind.label] += spent
                released[kind.label] += amount - spent
    system = broker.quota.system_accounts()
    return {
        "reserved": _per_kind(reserved),
        "settled": _per_kind(settled),
        "released": _per_kind(released),
        "held": _per_kind(held),
        "ledger": {
            "escrow_pending": _per_kind(
                Counter({k.label: system[(SystemAccount.ESCROW, k)].credits_pending for k in Kind})
            ),
            "consumed": _per_kind(
                Counter({k.label: system[(SystemAccount.CONSUMED, k)].credits_posted for k in Kind})
            ),
        },
    }


def _per_kind(amounts: Counter[str]) -> dict[str, int]:
    return {kind.label: amounts[kind.label] for kind in Kind}
