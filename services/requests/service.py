"""`Requests`: the one object the RequestService servicer, the broker's jobs and in-process
users (the simulator) call.

Owns: Submit's flow, cancelling, watching, the catalog of the world that validation reads
(rebuilt when the constellation changes in this process, and at least every `CATALOG_SECONDS`
for changes made by other replicas), and who may call what (checked here, first, against the
caller's Principal):

| method | operator | tenant key | node key |
| --- | --- | --- | --- |
| `quote` | yes | yes | no |
| `submit` | for a named tenant | for its own tenant | no |
| `get`, `cancel`, `watch` | any request | its own tenant's | no |
| `list_requests` | all, or one tenant's | its own tenant's | no |

Another tenant's request is NOT_FOUND, never "forbidden", so ids leak nothing. The other
methods and properties (`stored`, `reservations`, `hub`) are for in-process callers: the
scheduling loop (orbitq.services.scheduling), the simulator, tests.

Submit, in order: scope and tenant (NOT_FOUND); the idempotency key (a known key returns its
request, created = false, when the spec is the same, else ALREADY_EXISTS); validation
(INVALID_ARGUMENT); the workload module and input the tenant pushed (uplink.py: NOT_FOUND,
INVALID_ARGUMENT); a request no node can ever take is stored UNSCHEDULABLE at once with the
reason, reserving nothing; otherwise the quote's maximum over the nodes it may use is reserved
(FAILED_PRECONDITION naming kind and shortfall, and nothing stored, if the tenant is short),
and the request stored SUBMITTED → PENDING in the same transaction: the request's rows ride in
the ledger group that reserves for it (CreateTransfers.attached), so both commit or neither
does — no crash leaves a reservation without its request — and Submits share group commits.
Two Submits racing with one key: the database's unique (tenant, key) refuses the loser's rows,
which fails its reservation with them, and the loser returns the winner's request. Reservations
that brokers of earlier versions left without a request (they reserved, then stored) are
released when a broker starts (recovery.py).

Does not own: the lifecycle rules (lifecycle.py), storage (store.py), the ledger (reservations),
the scheduling loop (orbitq.services.scheduling, which works on this object's store,
reservations and hub: the broker composes both) or transport.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa

from orbitq.ledger.store import AttachedWriteError
from orbitq.ledger.store.writer import GroupCommitWriter
from orbitq.services import crashpoint, pagination
from orbitq.services.auth import Principal
from orbitq.services.clock import NANOS_PER_SECOND, to_ns
from orbitq.services.constellation import Constellation
from orbitq.services.db.models import IDEMPOTENCY_KEY_CHARS_MAX
from orbitq.services.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from orbitq.services.identity.api_keys import Role
from orbitq.services.quota import Quota
from orbitq.services.requests import settlement
from orbitq.services.requests import spec as spec_rules
from orbitq.services.requests.lifecycle import CANCELLABLE, Move
from orbitq.services.requests.model import (
    GRACE_SECONDS,
    NO_COST,
    QuoteResult,
    RequestSpec,
    RequestState,
    StoredRequest,
    Transition,
)
from orbitq.services.requests.reservations import Reservations
from orbitq.services.requests.spec import Catalog
from orbitq.services.requests.store import DuplicateKeyError, RequestStore, new_request_id
from orbitq.services.requests.terms import CancelTerms, Terms
from orbitq.services.requests.uplink import BlobLookup, check_uplink
from orbitq.services.requests.watch import (
    WATCH_PAGE_MAX,
    WATCH_SECONDS_MAX,
    WATCH_WAIT_SECONDS,
    TransitionHub,
    WatchSlots,
)
from orbitq.services.scheduler import Cost, rfc3339
from orbitq.services.tenants import Tenants

log = logging.getLogger(__name__)

S = RequestState
# How long a catalog of the world may serve validation without a look at the database
# (changes made through this process invalidate it at once).
CATALOG_SECONDS = 5.0
_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
CANCEL_ATTEMPTS_MAX = 4
REASON_WAITING = "waiting for the next scheduling cycle"


def _nothing() -> None:
    pass


class Requests:
    def __init__(
        self,
        engine: sa.Engine,
        now: Callable[[], datetime],
        tenants: Tenants,
        quota: Quota,
        writer: GroupCommitWriter,
        constellation: Constellation,
        *,
        on_submitted: Callable[[], None] = _nothing,
        request_ids: Callable[[], str] = new_request_id,
        receipt_grace: int | None = None,
        blobs: BlobLookup | None = None,
        terms: CancelTerms | None = None,
    ) -> None:
        """`receipt_grace`: usage receipts complete running work (settlement "receipts"),
        due this long after the deadline; None: the clock does (settlement "plan"), and
        workloads may be opaque strings. `blobs`: the tenants' modules and inputs. `terms`:
        the cancellation terms (terms.py)."""
        self.terms = terms or CancelTerms()
        self._now = now
        # Random in a broker; a seeded sequence in `orbitq sim`, so a seed repeats its schedule.
        self._request_ids = request_ids
        self._tenants = tenants
        self._constellation = constellation
        self._on_submitted = on_submitted
        self.store = RequestStore(engine, receipt_grace)
        self._blobs = blobs
        self._modules_required = receipt_grace is not None
        self._reservations = Reservations(quota, writer)
        self._hub = TransitionHub()
        self._slots = WatchSlots()
        self._catalog: Catalog | None = None
        self._catalog_at = 0.0
        self._catalog_lock = threading.Lock()
        # Held while one thread reads the world for a new catalog (never with _catalog_lock
        # held first: that one is only ever taken inside it).
        self._catalog_rebuild_lock = threading.Lock()
        # Counts world_changed calls: a catalog read across one is not kept.
        self._catalog_generation = 0

    @property
    def reservations(self) -> Reservations:
        """The ledger side of requests, for the scheduling loop (owed reservations)."""
        return self._reservations

    @property
    def hub(self) -> TransitionHub:
        """News of transitions, for the scheduling loop (it announces the moves it makes)."""
        return self._hub

    # -- the world as validation sees it -------------------------------------------------------

    def world_changed(self) -> None:
        """Nodes or stations changed in this process: the next validation reads them again."""
        with self._catalog_lock:
            self._catalog = None
            self._catalog_generation += 1

    def catalog(self) -> Catalog:
        cached = self._cached_catalog()
        if cached is not None:
            return cached
        # One thread reads the world, the others wait for its catalog: every Submit in flight
        # found it stale at the same moment and each read it again (in a profiled run of
        # bench/submit.py, 27 reads of the nodes and stations where 2 or 3 were due).
        with self._catalog_rebuild_lock:
            cached = self._cached_catalog()
            if cached is not None:
                return cached
            with self._catalog_lock:
                generation = self._catalog_generation
            catalog = Catalog.of(self._constellation.nodes(), self._constellation.stations())
            with self._catalog_lock:
                # A change announced while we read may be missing from what we read: used
                # once, not kept.
                if generation == self._catalog_generation:
                    self._catalog, self._catalog_at = catalog, time.monotonic()
        return catalog

    def _cached_catalog(self) -> Catalog | None:
        with self._catalog_lock:
            fresh = time.monotonic() - self._catalog_at < CATALOG_SECONDS
            return self._catalog if fresh else None

    # -- quote and submit ----------------------------------------------------------------------

    def quote(self, principal: Principal, spec: RequestSpec) -> QuoteResult:
        principal.require_role(Role.OPERATOR, Role.TENANT, action="quoting a request")
        checked = spec_rules.validate(spec, self.now_s())
        catalog = self.catalog()
        spec_rules.check_selectors(checked, catalog)
        eligibility = spec_rules.eligible(checked, catalog)
        if not eligibility.nodes:
            raise FailedPreconditionError(f"no node can run this request: {eligibility.reason}")
        return spec_rules.quote_for(checked, eligibility.nodes)

    def submit(
        self,
        principal: Principal,
        spec: RequestSpec,
        idempotency_key: str = "",
        tenant: str = "",
    ) -> tuple[StoredRequest, bool]:
        """(the request, whether this call created it). See the module docstring."""
        owner = principal.tenant_scope(tenant, "submit requests for")
        self._tenants.require(owner)
        key = _check_key(idempotency_key) or secrets.token_hex(16)
        incoming = spec_rules.normalize(spec)
        existing = self.store.by_key(owner, key)
        if existing is not None:
            return _same_request(existing, incoming, key), False
        now_ns = to_ns(self._now())
        checked = spec_rules.validate(incoming, now_ns // NANOS_PER_SECOND)
        check_uplink(checked, owner, self._blobs, modules_required=self._modules_required)
        catalog = self.catalog()
        spec_rules.check_selectors(checked, catalog)
        eligibility = spec_rules.eligible(checked, catalog)
        request_id = self._request_ids()
        if not eligibility.nodes:
            return self._store_new(
                _new(request_id, owner, key, checked, now_ns),
                S.UNSCHEDULABLE,
                eligibility.reason,
                incoming,
            )
        cost = spec_rules.quote_for(checked, eligibility.nodes).maximum
        timeout = checked.deadline + GRACE_SECONDS - now_ns // NANOS_PER_SECOND
        reason = (
            f"reserved cpu {cost.cpu:,}, storage {cost.storage:,}, link {cost.link:,} until"
            f" {rfc3339(checked.deadline + GRACE_SECONDS)}; {REASON_WAITING}"
        )
        stored, transitions = _admitted(
            _new(request_id, owner, key, checked, now_ns, cost), S.PENDING, reason
        )
        try:
            # The request's rows ride in the ledger group that reserves for it: both commit,
            # or neither (no crash leaves a reservation without its request), in a shared
            # group commit rather than a durable transaction of their own.
            self._reservations.reserve(
                request_id,
                owner,
                cost,
                timeout,
                attached=self.store.insert_rows(stored, transitions),
            )
        except (FailedPreconditionError, AttachedWriteError):
            # A concurrent Submit with this key may have won (the unique key refused our rows,
            # and so our reservation), or won and spent the tokens.
            raced = self.store.by_key(owner, key)
            if raced is not None:
                return _same_request(raced, incoming, key), False
            raise
        # Committed, not yet answered: a crash here must leave the request for a retry.
        crashpoint.reached("submit.committed")
        self._hub.publish()
        self._on_submitted()
        return stored, True

    def _store_new(
        self, new: StoredRequest, state: RequestState, reason: str, incoming: RequestSpec
    ) -> tuple[StoredRequest, bool]:
        """Store a request that reserves nothing (UNSCHEDULABLE) in a transaction of its own."""
        stored, transitions = _admitted(new, state, reason)
        try:
            self.store.insert(stored, transitions)
        except DuplicateKeyError:
            winner = self.store.by_key(new.tenant, new.idempotency_key)
            assert winner is not None
            return _same_request(winner, incoming, new.idempotency_key), False
        self._hub.publish()
        return stored, True

    # -- reads ---------------------------------------------------------------------------------

    def get(self, principal: Principal, request_id: str) -> StoredRequest:
        """The request, if `principal` may see it; NotFoundError otherwise."""
        principal.require_role(Role.OPERATOR, Role.TENANT, action="reading service requests")
        if not _REQUEST_ID.match(request_id.lower()):
            raise InvalidArgumentError(f"request id {request_id[:40]!r} is not 32 hex digits")
        request_id = request_id.lower()
        request = self.store.get(request_id)
        if request is None or not principal.acts_for(request.tenant):
            raise NotFoundError(f"no request {request_id}")
        return request

    def list_requests(
        self,
        principal: Principal,
        tenant: str,
        states: frozenset[RequestState],
        page_size: int,
        page_token: str,
    ) -> tuple[list[StoredRequest], str]:
        """Newest first: a tenant's own; an operator's all, or one tenant's."""
        principal.require_role(Role.OPERATOR, Role.TENANT, action="listing service requests")
        scope: str | None = tenant or None
        if not principal.is_operator:
            scope = principal.tenant_scope(tenant, "list the requests of")
        size = pagination.page_size(page_size)
        query = {"requests": scope, "states": sorted(int(s) for s in states)}
        position = pagination.decode_token(page_token, query, (pagination.INT, pagination.TEXT))
        after: tuple[int, str] | None = None
        if position is not None:
            try:
                after = (int(position[0]), str(position[1]))
            except (TypeError, ValueError, IndexError):
                raise InvalidArgumentError(
                    "malformed page_token: pass back next_page_token"
                ) from None
        found = self.store.page(scope, states, size + 1, after)
        token = ""
        if len(found) > size:
            found = found[:size]
            token = pagination.encode_token([found[-1].submitted_ns, found[-1].id], query)
        return found, token

    def stored(self, request_id: str) -> StoredRequest | None:
        """Any request by id, without a caller (in-process users: the simulator, tests)."""
        return self.store.get(request_id)

    # -- cancel and watch ----------------------------------------------------------------------

    def cancel(self, principal: Principal, request_id: str) -> StoredRequest:
        """Cancel before the request runs (its reservation is released at once, less the fee
        of a placed request past its cut-off: terms.py, charged as `settled`); cancelling a
        cancelled request returns it; any other state is FAILED_PRECONDITION."""
        who = "an operator" if principal.is_operator else f"tenant {principal.tenant}"
        for _ in range(CANCEL_ATTEMPTS_MAX):
            request = self.get(principal, request_id)
            if request.state is S.CANCELLED:
                return request
            _check_cancellable(request)
            now_ns = to_ns(self._now())
            terms = self.terms_of(request)
            fee = terms.due(now_ns // NANOS_PER_SECOND)
            reason = f"cancelled by {who}"
            if fee != NO_COST:
                cutoff = rfc3339(terms.cutoff or 0)
                reason += f" after its cut-off ({cutoff}): fee link {fee.link:,}"
            # Expected: exactly the request the fee was worked out for (its state, and its
            # sequence: a request moved and placed again in between has other terms).
            (moved,) = self.store.apply(
                [
                    Move(
                        request.id,
                        frozenset({request.state}),
                        S.CANCELLED,
                        reason,
                        settled=fee if fee != NO_COST else None,
                        sequence=request.sequence,
                    )
                ],
                now_ns,
            )
            if moved is not None:
                break
            # It moved on between the read and the write (placed, started): look again.
        else:
            raise FailedPreconditionError(
                f"request {request_id} keeps changing state; retry the cancellation"
            )
        self._hub.publish()
        # The settlement path: a fee is posted from escrow (code cancel_fee) and the rest
        # released; without one, all is released. A crash here leaves it owed: the owed pass
        # resolves it with the same transfer ids.
        settlement.resolve(self.store, self._reservations, [moved], now_ns)
        return self.get(principal, request_id)

    def terms_of(self, request: StoredRequest) -> Terms:
        """`request`'s cancellation terms: its cut-off and fee while placed (and, once
        cancelled while placed, the terms it was cancelled under); free before."""
        placement = request.placement if request.state in (S.PLACED, S.CANCELLED) else None
        return self.terms.of(request.request(), placement, request.reserved.link)

    def watch(
        self,
        principal: Principal,
        request_id: str,
        after_sequence: int = 0,
        active: Callable[[], bool] = lambda: True,
    ) -> Iterator[tuple[Transition, StoredRequest]]:
        """Each transition after `after_sequence` with the request as it is now. Ends normally
        after the terminal transition (at once if it was sent before), or when `active()`
        turns False; raises UnavailableError after WATCH_SECONDS_MAX, or when the broker
        stops: the client resumes after the last sequence it saw."""
        if after_sequence < 0:
            raise InvalidArgumentError("after_sequence must not be negative")
        request = self.get(principal, request_id)
        return self._watch(request, after_sequence, active)

    def _watch(
        self, request: StoredRequest, after: int, active: Callable[[], bool]
    ) -> Iterator[tuple[Transition, StoredRequest]]:
        slot = self._slots.acquire(request.tenant)
        try:
            started = time.monotonic()
            seen = after
            while True:
                version = self._hub.version  # before reading: no announcement is missed
                items = self.store.transitions(request.id, seen, WATCH_PAGE_MAX)
                current = self.store.get(request.id)
                assert current is not None
                for transition in items:
                    if transition.to_state.terminal:
                        slot.release()  # before the client can see the end
                    yield transition, current
                    seen = transition.sequence
                if items:
                    continue
                if current.state.terminal and seen >= current.sequence:
                    return  # complete: the only normal end of a watch
                if not active():
                    return  # nobody is listening any more
                if self._hub.closed:
                    raise UnavailableError(
                        f"the broker is stopping: resume the watch after sequence {seen}"
                    )
                left = WATCH_SECONDS_MAX - (time.monotonic() - started)
                if left <= 0:
                    raise UnavailableError(
                        f"the watch reached the broker's limit of {WATCH_SECONDS_MAX:g} s:"
                        f" resume it after sequence {seen}"
                    )
                self._hub.wait(version, min(WATCH_WAIT_SECONDS, left))
        finally:
            slot.release()

    def wake_watchers(self) -> None:
        """Make waiting watches look again now (e.g. their client went away)."""
        self._hub.publish()

    def end_watches(self) -> None:
        """The broker is stopping: every watch ends now (clients resume elsewhere or later)."""
        self._hub.close()

    def close(self) -> None:
        """The broker has stopped: end every watch."""
        self._hub.close()

    def now_s(self) -> int:
        """The clock's now in whole seconds."""
        return to_ns(self._now()) // NANOS_PER_SECOND


# -- helpers -------------------------------------------------------------------------------------


def _check_key(key: str) -> str:
    if len(key) > IDEMPOTENCY_KEY_CHARS_MAX:
        raise InvalidArgumentError(
            f"idempotency_key is {len(key)} characters; at most {IDEMPOTENCY_KEY_CHARS_MAX}"
        )
    if key and not (key.isprintable() and key.isascii()):
        raise InvalidArgumentError("idempotency_key must be printable ASCII")
    return key


def _admitted(
    new: StoredRequest, state: RequestState, reason: str
) -> tuple[StoredRequest, list[Transition]]:
    """A new request as first stored, SUBMITTED -> `state`, and those two transitions."""
    stored = replace(
        new,
        state=state,
        sequence=2,
        reason=reason,
        reservation_open=state is S.PENDING,
        ended_ns=new.submitted_ns if state.terminal else None,
    )
    transitions = [
        Transition(new.id, 1, None, S.SUBMITTED, new.submitted_ns, "submitted"),
        Transition(new.id, 2, S.SUBMITTED, state, new.submitted_ns, reason),
    ]
    return stored, transitions


def _same_request(existing: StoredRequest, incoming: RequestSpec, key: str) -> StoredRequest:
    if existing.spec.same_as_retry(incoming):
        return existing
    raise AlreadyExistsError(
        f"idempotency key {key[:40]!r} was already used for another request ({existing.id});"
        " use a new key"
    )


def _check_cancellable(request: StoredRequest) -> None:
    if request.state in CANCELLABLE:
        return
    if request.state is S.RUNNING:
        why = "it is already running"
    else:
        when = rfc3339((request.ended_ns or request.updated_ns) // NANOS_PER_SECOND)
        why = f"it ended {request.state.label} at {when}"
    raise FailedPreconditionError(f"request {request.id} cannot be cancelled: {why}")


def _new(
    request_id: str,
    tenant: str,
    key: str,
    spec: RequestSpec,
    now_ns: int,
    reserved: Cost = NO_COST,
) -> StoredRequest:
    return StoredRequest(
        id=request_id,
        tenant=tenant,
        idempotency_key=key,
        spec=spec,
        state=S.SUBMITTED,
        sequence=1,
        reserved=reserved,
        settled=NO_COST,
        reservation_open=False,
        placement=None,
        contacts=(),
        reason="submitted",
        placement_reasons=(),
        submitted_ns=now_ns,
        updated_ns=now_ns,
        ended_ns=None,
    )
