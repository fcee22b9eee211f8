"""`Explainer`: why a request is where it is, when it would run, and what would make it fit.

Owns: the two questions and who may ask them —

| method | operator | tenant key | node key |
| --- | --- | --- | --- |
| `explain(id)` | any request | its own tenant's (another's: PERMISSION_DENIED) | no |
| `quote(spec)` | yes (with `tenant`: that tenant's balance) | yes, its own balance | no |

For a PLACED, RUNNING or COMPLETED request the answer is its stored plan (uplink, run,
downlink). For a PENDING or UNSCHEDULABLE one, and for a spec being quoted, the answer is
computed on a scratch copy of the scheduler's world (scratch.py) by the scheduler's own cycle
(probe.py): the earliest placement it would get now, or each plugin's reason with how many
nodes it turned away and the smallest change that fits — a later deadline by how much, a
station to allow, the tokens short per kind (quote: the tenant's available balance against
what Submit would reserve). Also each request's cancellation terms (orbitq.services.requests
.terms). Nothing is written: the stored schedule and the leader's scheduler are untouched.

Bounds: at most EXPLAINS_AT_ONCE_MAX questions are computed at once (each builds a copy of the
world); one more waits up to EXPLAIN_WAIT_SECONDS, then RESOURCE_EXHAUSTED. The copy's bounds
and the search's are in scratch.py and probe.py.

Does not own: the copy, the probes, the request lifecycle or transport.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime

from orbitq.ledger.model import Kind
from orbitq.services.auth import Principal
from orbitq.services.clock import NANOS_PER_SECOND, to_ns
from orbitq.services.constellation import Constellation
from orbitq.services.errors import (
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
)
from orbitq.services.explaining import probe as probes
from orbitq.services.explaining.scratch import ContactCache, Scratch, build
from orbitq.services.identity.api_keys import Role
from orbitq.services.quota import Quota
from orbitq.services.requests import (
    DEADLINE_AHEAD_SECONDS_MAX,
    QuoteResult,
    Requests,
    RequestSpec,
    RequestState,
    StoredRequest,
)
from orbitq.services.requests import spec as spec_rules
from orbitq.services.requests.terms import Terms
from orbitq.services.scheduler import Cost, Placement, Rejection, Request, rfc3339

EXPLAINS_AT_ONCE_MAX = 2
EXPLAIN_WAIT_SECONDS = 10.0
QUOTE_REQUEST_ID = "quote"
_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
_PLANNED = frozenset({RequestState.PLACED, RequestState.RUNNING, RequestState.COMPLETED})
# SUBMITTED is stored with PENDING in one transaction; listed for completeness.
_COMPUTED = frozenset({RequestState.SUBMITTED, RequestState.PENDING, RequestState.UNSCHEDULABLE})
NONE_SHORT = Cost(0, 0, 0)


@dataclass(frozen=True)
class Eta:
    """When a request runs (`planned`: its stored placement) or could run (computed), or why
    not and what would make it fit. Times are whole seconds."""

    placement: Placement | None
    planned: bool
    reasons: tuple[Rejection, ...] = ()
    summary: str = ""
    # The least extra time before the deadline that fits (None: none found, or not needed),
    # and how far the search looked.
    later_deadline_seconds: int | None = None
    searched_seconds: int = 0
    # Stations outside the selector that make it fit when allowed.
    allow_stations: tuple[str, ...] = ()
    # Tokens short per kind of what Submit would reserve (quotes only).
    short: Cost = NONE_SHORT
    # One sentence for people: "fits if the deadline is 37 min later, or with station NO allowed".
    advice: str = ""
    # What the computation covered.
    nodes: int = 0
    contacts: int = 0
    placements: int = 0
    truncated: bool = False
    probes: int = 0


@dataclass(frozen=True)
class Explanation:
    request: StoredRequest | None
    eta: Eta
    terms: Terms
    now: int


class Explainer:
    def __init__(
        self,
        requests: Requests,
        constellation: Constellation,
        quota: Quota,
        now: Callable[[], datetime],
        *,
        agents_required: bool,
    ) -> None:
        self._requests = requests
        self._constellation = constellation
        self._quota = quota
        self._now = now
        self._agents_required = agents_required
        self._slots = threading.BoundedSemaphore(EXPLAINS_AT_ONCE_MAX)
        # API keys with a computation in flight (at most EXPLAINS_AT_ONCE_MAX plus those
        # waiting for a slot, each bounded by the server's worker threads).
        self._callers: set[str] = set()
        self._callers_lock = threading.Lock()
        self._contacts = ContactCache()

    def explain(self, principal: Principal, request_id: str) -> Explanation:
        principal.require_role(Role.OPERATOR, Role.TENANT, action="explaining service requests")
        wanted = request_id.lower()
        if not _REQUEST_ID.match(wanted):
            raise InvalidArgumentError(f"request id {request_id[:40]!r} is not 32 hex digits")
        stored = self._requests.stored(wanted)
        if stored is None:
            raise NotFoundError(f"no request {wanted}")
        if not principal.acts_for(stored.tenant):
            raise PermissionDeniedError(
                f"request {wanted} belongs to another tenant: a tenant key explains only its"
                " own tenant's requests"
            )
        now_s = self._now_s()
        terms = self._requests.terms_of(stored)
        if stored.state in _PLANNED and stored.placement is not None:
            eta = Eta(stored.placement, planned=True, advice=_planned_advice(stored.placement))
        elif stored.state in _COMPUTED:
            eta = self._compute(principal, stored.request(), now_s, NONE_SHORT)
        else:
            eta = Eta(
                None,
                planned=False,
                summary=stored.reason,
                advice=f"it is {stored.state.label}: nothing will be placed; `request quote`"
                " says where the same spec would fit now",
            )
        return Explanation(stored, eta, terms, now_s)

    def quote(
        self, principal: Principal, spec: RequestSpec, tenant: str, *, eta: bool
    ) -> tuple[QuoteResult, Explanation | None]:
        """The cost (Requests.quote) and, with `eta`, where the spec would fit now."""
        result = self._requests.quote(principal, spec)
        if not eta:
            return result, None
        owner = ""
        if principal.role is Role.TENANT or tenant:
            owner = principal.tenant_scope(tenant, "quote for")
        short = self._short(owner, result.maximum) if owner else NONE_SHORT
        now_s = self._now_s()
        checked = spec_rules.validate(spec, now_s)  # not_before resolved as Submit would
        request = checked.request(QUOTE_REQUEST_ID, owner or QUOTE_REQUEST_ID, now_s)
        computed = self._compute(principal, request, now_s, short)
        terms = self._requests.terms.of(request, computed.placement, result.maximum.link)
        return result, Explanation(None, computed, terms, now_s)

    # -- computing ------------------------------------------------------------------------------

    def _compute(self, principal: Principal, request: Request, now_s: int, short: Cost) -> Eta:
        with self._slot(principal):
            scratch = build(
                self._constellation,
                self._requests.store,
                now_s,
                agents_required=self._agents_required,
                cache=self._contacts,
            )
            return _answer(scratch, request, now_s, short)

    @contextmanager
    def _slot(self, principal: Principal) -> Iterator[None]:
        # One computation at a time per API key: a caller in a loop holds at most one of the
        # slots, so the others stay for everyone else.
        with self._callers_lock:
            if principal.key_id in self._callers:
                raise ResourceExhaustedError(
                    f"API key {principal.key_id} already has an explanation or quoted ETA being"
                    " computed; wait for it (one at a time per key)"
                )
            self._callers.add(principal.key_id)
        try:
            if not self._slots.acquire(timeout=EXPLAIN_WAIT_SECONDS):
                raise ResourceExhaustedError(
                    f"the broker computes at most {EXPLAINS_AT_ONCE_MAX} explanations or quoted"
                    " ETAs at once; try again shortly"
                )
            try:
                yield
            finally:
                self._slots.release()
        finally:
            with self._callers_lock:
                self._callers.discard(principal.key_id)

    def _short(self, tenant: str, cost: Cost) -> Cost:
        accounts = self._quota.tenant_accounts(tenant)

        def gap(kind: Kind, amount: int) -> int:
            return max(0, amount - accounts[kind].available)

        return Cost(
            gap(Kind.CPU, cost.cpu), gap(Kind.STORAGE, cost.storage), gap(Kind.LINK, cost.link)
        )

    def _now_s(self) -> int:
        return to_ns(self._now()) // NANOS_PER_SECOND


def _answer(scratch: Scratch, request: Request, now_s: int, short: Cost) -> Eta:
    scheduler = scratch.scheduler
    covered = Eta(
        None,
        False,
        short=short,
        nodes=scratch.nodes,
        contacts=scratch.contacts,
        placements=scratch.placements,
        truncated=scratch.truncated,
    )
    # Placed meanwhile (the cycle ran between reading the request and the copy): its own
    # placement is not in its way.
    scheduler.release(request.id)
    first = probes.probe(scheduler, request, now_s)
    if first.placement is not None:
        advice = "fits now: " + _planned_advice(first.placement)
        if short != NONE_SHORT:
            advice += f"; Submit would be refused: {_tokens(short)} short"
        return replace(covered, placement=first.placement, advice=advice, probes=1)
    latest = now_s + DEADLINE_AHEAD_SECONDS_MAX
    search = probes.later_deadline(scheduler, request, now_s, scratch.contacts_until, latest)
    stations, _ = probes.stations_to_allow(scheduler, request, now_s)
    options = []
    if search.extra_seconds is not None:
        options.append(f"if the deadline is {duration(search.extra_seconds)} later")
    if stations:
        plural = "s" if len(stations) > 1 else ""
        options.append(f"with station{plural} {', '.join(stations)} allowed")
    if options:
        advice = "fits " + ", or ".join(options)
    else:
        advice = (
            f"no later deadline (searched {duration(search.searched_seconds)}) and no other"
            " station makes it fit in the current world"
        )
    if short != NONE_SHORT:
        advice += f"; and Submit needs {_tokens(short)} more"
    return replace(
        covered,
        reasons=first.reasons,
        summary=first.summary,
        later_deadline_seconds=search.extra_seconds,
        searched_seconds=search.searched_seconds,
        allow_stations=stations,
        advice=advice,
        probes=1 + search.probes + (2 if stations else 0),
    )


def _planned_advice(placement: Placement) -> str:
    return (
        f"node {placement.node}: uplink {rfc3339(placement.uplink.at)} via"
        f" {placement.uplink.station}, runs {rfc3339(placement.start)} .."
        f" {rfc3339(placement.end)}, result down by {rfc3339(placement.finish)}"
    )


def _tokens(short: Cost) -> str:
    parts = [
        f"{kind} {amount:,}"
        for kind, amount in (("cpu", short.cpu), ("storage", short.storage), ("link", short.link))
        if amount
    ]
    return ", ".join(parts) + " tokens"


def duration(seconds: int) -> str:
    """Whole minutes, rounded up: '37 min', '2 h 5 min', '3 d 4 h'."""
    minutes = -(-seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
