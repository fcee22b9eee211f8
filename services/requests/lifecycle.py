"""The lifecycle of a request: which transitions exist, and what each one changes.

Owns: the transition table (brief §5, docs/scheduler.md "Service requests"), `Move` — one
transition to make if the request is still where the caller saw it — and `due_s`, when time
alone next moves a request. A transition outside the table is a programmer error (asserted),
never a client's: clients only ever ask for a cancellation, which has its own check.

    SUBMITTED → PENDING → PLACED → RUNNING → COMPLETED
    SUBMITTED, PENDING → UNSCHEDULABLE | CANCELLED | EXPIRED
    PLACED  → CANCELLED | FAILED | PENDING (displaced; node down; the world changed)
    RUNNING → FAILED | PENDING (node fault while the deadline still allows a run)

Does not own: storage (store.py), the ledger side of a transition (reservations.py) or when
transitions happen (orbitq.services.scheduling, service.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from orbitq.services.requests.model import Fault, ReceiptFacts, RequestState
from orbitq.services.scheduler import Contact, Cost, Placement, Rejection

S = RequestState

ALLOWED: dict[RequestState | None, frozenset[RequestState]] = {
    None: frozenset({S.SUBMITTED}),
    S.SUBMITTED: frozenset({S.PENDING, S.UNSCHEDULABLE, S.CANCELLED, S.EXPIRED}),
    S.PENDING: frozenset({S.PLACED, S.UNSCHEDULABLE, S.CANCELLED, S.EXPIRED}),
    # Back to PENDING: displaced by preemption, its node went down before the ticket went up,
    # or a changed world no longer holds its placement.
    S.PLACED: frozenset({S.RUNNING, S.PENDING, S.CANCELLED, S.FAILED}),
    # Back to PENDING: a node fault while the deadline still leaves time to run again.
    S.RUNNING: frozenset({S.COMPLETED, S.PENDING, S.FAILED}),
}
# A tenant may cancel until the request runs.
CANCELLABLE = frozenset({S.SUBMITTED, S.PENDING, S.PLACED})


def allowed(from_state: RequestState | None, to_state: RequestState) -> bool:
    return to_state in ALLOWED.get(from_state, frozenset())


def check(from_state: RequestState | None, to_state: RequestState) -> None:
    assert allowed(from_state, to_state), f"no transition {from_state} -> {to_state}"


def due_s(
    state: RequestState,
    deadline: int,
    placement: Placement | None,
    reservation_open: bool,
    receipt_grace: int | None = None,
) -> int | None:
    """When time alone next moves a request in `state` (None: never).

    Waiting requests expire at their deadline, placed ones start at their start, running ones
    complete at their finish — or, when usage receipts complete them (`receipt_grace` given),
    are due at deadline + receipt_grace, when a receipt that has not come is the operator's
    fault — and a terminal request whose reservation the ledger still holds is due at once
    (its release or settlement is owed)."""
    if state in (S.SUBMITTED, S.PENDING):
        return deadline
    if state is S.PLACED:
        assert placement is not None
        return placement.start
    if state is S.RUNNING:
        assert placement is not None
        return placement.finish if receipt_grace is None else deadline + receipt_grace
    return 0 if reservation_open else None


@dataclass(frozen=True, slots=True)
class Move:
    """Take request `request_id` to `to`, if it is still in one of `expected`.

    `placement` (with the `contacts` it uses) is stored when moving to PLACED; moving back to
    PENDING clears it. `settled` is the charge owed at COMPLETED (and at FAILED by the
    workload, from its receipt; at CANCELLED, the cancellation fee, if any). `reasons` are
    the scheduler's per-plugin reasons of an UNSCHEDULABLE verdict. `fault` says who caused a
    FAILED request; `receipt` is the usage receipt it ended by, stored with the transition.
    `sequence`, when given, must also still be the request's: a move worked out from one
    version of the request (a cancellation's fee, from its placement) does not apply to a later
    one in the same state (placed again elsewhere)."""

    request_id: str
    expected: frozenset[RequestState]
    to: RequestState
    reason: str
    placement: Placement | None = None
    contacts: tuple[Contact, ...] = ()
    settled: Cost | None = None
    reasons: tuple[Rejection, ...] = ()
    fault: Fault = Fault.NONE
    receipt: ReceiptFacts | None = None
    sequence: int | None = None

    def __post_init__(self) -> None:
        assert self.expected
        for state in self.expected:
            check(state, self.to)
        assert (self.placement is not None) == (self.to is S.PLACED)
        charged = self.to is S.COMPLETED or (self.to is S.FAILED and self.fault is Fault.WORKLOAD)
        # A cancellation after the cut-off carries its fee (terms.py); one before, nothing.
        assert (self.settled is not None) == charged or self.to is S.CANCELLED, self
        assert (self.fault is not Fault.NONE) == (self.to is S.FAILED), self
        assert self.fault is not Fault.WORKLOAD or self.receipt is not None, self
        assert self.receipt is None or self.to in (S.COMPLETED, S.FAILED), self
