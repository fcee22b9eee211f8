"""The request service's vocabulary: states, specs, stored requests, transitions and limits.

Owns: the frozen values the rest of orbitq.services.requests passes around, and every limit on
a request (docs/scheduler.md, "Service requests"). Times are integer seconds since the Unix
epoch, as in the scheduler; bookkeeping instants (submitted, updated, ended, a transition's
`at`) are nanoseconds, as in the ledger.

Does not own: rules (spec.py validates, lifecycle.py says which transitions exist), storage
(store.py) or the ledger (reservations.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from types import MappingProxyType
from typing import Any

from orbitq.services.scheduler import Contact, Cost, Placement, Rejection, Request

# Strings a person types; longer ones are refused (INVALID_ARGUMENT), never cut.
NAME_CHARS_MAX = 100
WORKLOAD_CHARS_MAX = 500
# Sizes. A node offers at most 1,000,000 millicores and 10^9 MB (the constellation's limits);
# bounding input and output keeps every token amount far below the ledger's 2^63 - 1.
CPU_MILLICORES_MAX = 1_000_000
STORAGE_MB_MAX = 1_000_000_000
TRANSFER_MB_MAX = 1_000_000_000
# How far ahead a deadline may be: contacts are planned a day or a week ahead (the contact
# plan's horizon), and a reservation's timeout must fit the ledger's uint32 seconds.
DEADLINE_AHEAD_SECONDS_MAX = 30 * 86_400
# A reservation expires at deadline + grace: the work ends by the deadline at the latest
# (its last downlink segment), and settlement follows once the broker's next job sees it.
# The grace covers the time between the two (a broker restart, a slow job, a late usage
# receipt once node agents report); past it the ledger releases the tokens by itself, so a
# request the broker forgot can never hold them for good.
GRACE_SECONDS = 3_600
# Reasons are one line for people; the scheduler's summaries stay far below this.
REASON_CHARS_MAX = 1_000
# A megabyte of input_mb and output_mb, in bytes (costs count MB * 8 / Mbps as seconds).
BYTES_PER_MB = 1_000_000


class RequestState(IntEnum):
    """Where a request is in its life. Equal to orbitq.v1.RequestState."""

    SUBMITTED = 1
    PENDING = 2
    PLACED = 3
    RUNNING = 4
    COMPLETED = 5
    UNSCHEDULABLE = 6
    CANCELLED = 7
    FAILED = 8
    EXPIRED = 9

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


class Fault(IntEnum):
    """Who caused a FAILED request, and so who paid. Equal to orbitq.v1.Fault."""

    NONE = 0
    # The operator's side (a node down, a contact missed, a ticket never pulled or refused,
    # no receipt in time, a run the agent lost): the reservation is refunded in full.
    OPERATOR = 1
    # The workload (a trap, out of fuel, wall time, output too large, a non-zero exit): what
    # it used is charged, from its receipt.
    WORKLOAD = 2


TERMINAL_STATES = frozenset(
    {
        RequestState.COMPLETED,
        RequestState.UNSCHEDULABLE,
        RequestState.CANCELLED,
        RequestState.FAILED,
        RequestState.EXPIRED,
    }
)
LIVE_STATES = frozenset(RequestState) - TERMINAL_STATES
# States in which the request holds a placement (and the scheduler a booking).
PLACED_STATES = frozenset({RequestState.PLACED, RequestState.RUNNING})


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """What a tenant asks for (brief §5). Times are integer seconds since the Unix epoch.

    `not_before` 0 means "at submission": Submit stores the submission second instead. The
    wire's timestamps are rounded inwards to whole seconds (not_before up, deadline down), so
    the stored window is never wider than the one asked for."""

    name: str
    workload: str
    cpu_millicores: int
    run_seconds: int
    storage_mb: int
    input_mb: int
    output_mb: int
    not_before: int
    deadline: int
    priority: int = 0
    node_labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    node_ids: tuple[str, ...] = ()
    station_countries: tuple[str, ...] = ()
    station_ids: tuple[str, ...] = ()
    # The input's content address ("sha256:<hex>", pushed with PushInput); "" for none.
    input: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_labels", MappingProxyType(dict(self.node_labels)))

    def request(self, request_id: str, tenant: str, submitted_at: int) -> Request:
        """The scheduler's view of this spec."""
        return Request(
            id=request_id,
            tenant=tenant,
            cpu_millicores=self.cpu_millicores,
            run_seconds=self.run_seconds,
            storage_mb=self.storage_mb,
            input_mb=self.input_mb,
            output_mb=self.output_mb,
            not_before=self.not_before,
            deadline=self.deadline,
            priority=self.priority,
            node_labels=dict(self.node_labels),
            node_ids=self.node_ids,
            station_countries=self.station_countries,
            station_ids=self.station_ids,
            submitted_at=submitted_at,
        )

    def same_as_retry(self, retry: RequestSpec) -> bool:
        """Whether `retry` asks for this (stored) spec: a retry that left not_before unset
        matches the submission second the first attempt stored."""
        if retry.not_before == 0:
            retry = replace(retry, not_before=self.not_before)
        return self == retry

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "workload": self.workload,
            "cpu_millicores": self.cpu_millicores,
            "run_seconds": self.run_seconds,
            "storage_mb": self.storage_mb,
            "input_mb": self.input_mb,
            "output_mb": self.output_mb,
            "not_before": self.not_before,
            "deadline": self.deadline,
            "priority": self.priority,
            "node_labels": dict(self.node_labels),
            "node_ids": list(self.node_ids),
            "station_countries": list(self.station_countries),
            "station_ids": list(self.station_ids),
            "input": self.input,
        }

    @classmethod
    def from_json(cls, text: str) -> RequestSpec:
        data = json.loads(text)
        return cls(
            name=str(data["name"]),
            workload=str(data["workload"]),
            cpu_millicores=int(data["cpu_millicores"]),
            run_seconds=int(data["run_seconds"]),
            storage_mb=int(data["storage_mb"]),
            input_mb=int(data["input_mb"]),
            output_mb=int(data["output_mb"]),
            not_before=int(data["not_before"]),
            deadline=int(data["deadline"]),
            priority=int(data["priority"]),
            node_labels={str(k): str(v) for k, v in data["node_labels"].items()},
            node_ids=tuple(str(v) for v in data["node_ids"]),
            station_countries=tuple(str(v) for v in data["station_countries"]),
            station_ids=tuple(str(v) for v in data["station_ids"]),
            input=str(data.get("input", "")),
        )


NO_COST = Cost(0, 0, 0)


@dataclass(frozen=True, slots=True)
class ReceiptFacts:
    """The usage receipt a request ended by, as stored with its transition: the envelope
    exactly as the node signed it, the key that verified it (and that key's NodeKeyEnrolled
    entry), and what it says (orbitq.v1.RunOutcome, the result's SHA-256 and size)."""

    digest: bytes
    envelope: bytes
    node: str
    node_public_key: bytes
    key_entry_index: int
    outcome: int
    result_digest: str | None  # 64 hex digits
    result_bytes: int
    received_ns: int


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """A request as stored. `placement` and `contacts` (the contact windows it uses, as the
    scheduler saw them) are set while PLACED or RUNNING, and kept once COMPLETED."""

    id: str
    tenant: str
    idempotency_key: str
    spec: RequestSpec
    state: RequestState
    sequence: int
    reserved: Cost
    settled: Cost
    reservation_open: bool
    placement: Placement | None
    contacts: tuple[Contact, ...]
    reason: str
    placement_reasons: tuple[Rejection, ...]
    submitted_ns: int
    updated_ns: int
    ended_ns: int | None
    # Set once it ended: who was at fault (FAILED), and the facts of its usage receipt.
    fault: Fault = Fault.NONE
    outcome: int = 0
    receipt_digest: bytes | None = None
    result_digest: str | None = None
    result_bytes: int = 0

    @property
    def charged(self) -> bool:
        """Whether its end is settled with a charge (COMPLETED, FAILED by its workload with
        a receipt saying what it used, or CANCELLED after its cut-off with a fee), not
        released."""
        if self.state is RequestState.COMPLETED:
            return True
        if self.state is RequestState.CANCELLED:
            fee = self.settled
            return fee.cpu > 0 or fee.storage > 0 or fee.link > 0
        return self.state is RequestState.FAILED and self.fault is Fault.WORKLOAD

    @property
    def submitted_at(self) -> int:
        """Submission time in whole seconds (the scheduler's tie-break)."""
        return self.submitted_ns // 1_000_000_000

    def request(self) -> Request:
        return self.spec.request(self.id, self.tenant, self.submitted_at)


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change, numbered from 1 per request; `from_state` None for the first."""

    request_id: str
    sequence: int
    from_state: RequestState | None
    to_state: RequestState
    at_ns: int
    reason: str


@dataclass(frozen=True, slots=True)
class QuoteResult:
    """What a spec costs: `maximum` is what Submit reserves, `minimum` the least it can cost."""

    maximum: Cost
    minimum: Cost
    explanation: str
