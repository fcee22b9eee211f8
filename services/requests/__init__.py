"""orbitq.services.requests: tenants' service requests, from submission to settlement.

Owns: the request lifecycle (brief §5; docs/scheduler.md "Service requests"): validation and
cost of a spec, persistence of requests and their numbered transitions, the reservation of
tokens in the ledger and its release or settlement, and watching. `Requests` is the entry point:

    requests.submit(principal, spec, idempotency_key)   -> (StoredRequest, created)
    requests.get(principal, request_id)                  -> StoredRequest
    requests.cancel(principal, request_id)               -> StoredRequest
    requests.watch(principal, request_id, after)         -> transitions as they happen

| module | owns |
| --- | --- |
| `model` | states, `RequestSpec`, `StoredRequest`, `Transition`, limits, grace |
| `lifecycle` | the transition table, `Move`, when time next moves a request |
| `spec` | validation with precise messages, eligibility, cost (`quote_for`) |
| `store` | the two tables, conditional numbered transitions, queries |
| `reservations` | reserve, release, settle: derived transfer ids, request id as user_data |
| `watch` | in-process news of transitions, limits on watches |
| `service` | `Requests`: authorisation and the flows the servicer calls |
| `recovery` | at broker start: interrupted submissions failed, orphaned reservations voided |

Dependency rule: requests imports the scheduler (costs and models), never the scheduling loop
(orbitq.services.scheduling), which imports requests: it places, starts, completes and expires
the stored requests, through `Requests.store`, `.reservations` and `.hub`. The broker composes
the two.

Does not own: placement (orbitq.services.scheduler), the scheduling loop and the schedule
document (orbitq.services.scheduling), the ledger (orbitq.ledger), transport.
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
    "QuoteResult",
    "RequestSpec",
    "RequestState",
    "Requests",
    "StoredRequest",
    "Transition",
]
