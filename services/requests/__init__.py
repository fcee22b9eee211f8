"""orbitq.services.requests: tenants' service requests, from submission to settlement.

Owns: the request lifecycle (brief §5; docs/scheduler.md "Service requests"): validation and
cost of a spec, persistence of requests and their numbered transitions, the reservation of
tokens in the ledger and its release or settlement, the scheduling loop that keeps one
in-memory Scheduler in step with the database, and watching. `Requests` is the entry point:

    requests.submit(principal, spec, idempotency_key)   -> (StoredRequest, created)
    requests.run_cycle(now)                              -> CycleReport
    requests.advance(now)                                -> AdvanceReport
    requests.schedule_document(start, end)               -> the §9 document

| module | owns |
| --- | --- |
| `model` | states, `RequestSpec`, `StoredRequest`, `Transition`, reports, limits, grace |
| `lifecycle` | the transition table, `Move`, when time next moves a request |
| `spec` | validation with precise messages, eligibility, cost (`quote_for`) |
| `store` | the two tables, conditional numbered transitions, queries |
| `reservations` | reserve, release, settle: derived transfer ids, request id as user_data |
| `world` | constellation -> scheduler models (whole-second contacts, station caps) |
| `cycle` | `SchedulingLoop`: world sync, cycles, time-driven transitions, owed reservations |
| `leader` | one active scheduler among replicas (PostgreSQL advisory lock) |
| `watch` | in-process news of transitions, limits on watches |
| `export` | the schedule document of what is stored |
| `service` | `Requests`: authorisation and the flows the servicer calls |

Does not own: placement (orbitq.services.scheduler), the ledger (orbitq.ledger), transport.
"""

from __future__ import annotations

from orbitq.services.requests.model import (
    DEADLINE_AHEAD_SECONDS_MAX,
    GRACE_SECONDS,
    LIVE_STATES,
    NAME_CHARS_MAX,
    PLACED_STATES,
    TERMINAL_STATES,
    WORKLOAD_CHARS_MAX,
    AdvanceReport,
    CycleReport,
    QuoteResult,
    RequestSpec,
    RequestState,
    StoredRequest,
    Transition,
)
from orbitq.services.requests.service import Requests
from orbitq.services.requests.watch import WATCHES_MAX, WATCHES_PER_TENANT_MAX

__all__ = [
    "DEADLINE_AHEAD_SECONDS_MAX",
    "GRACE_SECONDS",
    "LIVE_STATES",
    "NAME_CHARS_MAX",
    "PLACED_STATES",
    "TERMINAL_STATES",
    "WATCHES_MAX",
    "WATCHES_PER_TENANT_MAX",
    "WORKLOAD_CHARS_MAX",
    "AdvanceReport",
    "CycleReport",
    "QuoteResult",
    "RequestSpec",
    "RequestState",
    "Requests",
    "StoredRequest",
    "Transition",
]
