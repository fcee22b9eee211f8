"""The operator failed a request: what becomes of it, and who pays.

Owns: `operator_fault` — a request the operator's side failed before it ran (a ticket never
pulled or refused by the agent, a node down, a run the agent lost) goes back to PENDING while
its deadline leaves room to run (now + run_seconds < deadline), else it is FAILED with the
operator at fault, and its reservation is refunded in full (reservations.py, code `refund`).
The faults table of docs/agent.md is the whole policy.

Does not own: when such faults are seen (orbitq.services.scheduling, orbitq.services.agents).
"""

from __future__ import annotations

from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import Fault, RequestState, StoredRequest
from orbitq.services.scheduler import rfc3339

S = RequestState


def operator_fault(request: StoredRequest, now_s: int, why: str) -> Move:
    """The move for a request the operator failed (see the module docstring)."""
    expected = frozenset({request.state})
    if now_s + request.spec.run_seconds < request.spec.deadline:
        return Move(request.id, expected, S.PENDING, f"{why}; placing it again")
    return Move(
        request.id,
        expected,
        S.FAILED,
        f"{why}, and the deadline {rfc3339(request.spec.deadline)} leaves no time to run"
        " again; the reservation is refunded (operator fault)",
        fault=Fault.OPERATOR,
    )
