"""The seams the node agents replace (issue 11): when placed work starts and when running work
completes, and what it is charged, are decided by a `Start` and a `Completion` the loop is
given; by default the clock decides, as placed."""

from __future__ import annotations

import pytest

from orbitq.ledger.model import Kind, SystemAccount
from orbitq.services.broker import Broker
from orbitq.services.clock import SimulatedClock
from orbitq.services.requests import RequestState, StoredRequest
from orbitq.services.requests.lifecycle import Move
from orbitq.services.scheduler import Cost
from orbitq.services.scheduling import SchedulingLoop
from orbitq.services.scheduling.completion import RUNNING_ONLY
from orbitq.services.scheduling.moves import Moves
from orbitq.services.scheduling.start import PLACED_ONLY, start_move
from tests.conftest import BrokerHandle
from tests.requests.books import check_books
from tests.requests.sky import MINTED, add_tenant, at, build_world, spec
from tests.scheduling.support import loop_with, stored

# The clock starts and completes placed work (no node agent runs in these tests).
pytestmark = pytest.mark.settlement("plan")

S = RequestState
RECEIPT = Cost(7, 11, 3)  # what a usage receipt would say was used


class Receipts:
    """Completes ended work charging what 'the receipt' says, not what the placement costs."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def complete(self, moves: Moves, now_s: int, now_ns: int) -> tuple[str, ...]:
        self.asked.append(now_s)
        return moves.due(RUNNING_ONLY, now_s, now_ns, self._move)

    @staticmethod
    def _move(request: StoredRequest) -> Move:
        return Move(request.id, RUNNING_ONLY, S.COMPLETED, "receipt verified", settled=RECEIPT)


class NoTicketPulled:
    """No agent has pulled a ticket yet: nothing starts."""

    def start(self, moves: Moves, now_s: int, now_ns: int) -> tuple[str, ...]:
        return ()


class TicketsPulled:
    def start(self, moves: Moves, now_s: int, now_ns: int) -> tuple[str, ...]:
        return moves.due(PLACED_ONLY, now_s, now_ns, start_move)


def placed_and_over(b: Broker, loop: SchedulingLoop, clock: SimulatedClock) -> tuple[str, int]:
    """A request of a new tenant placed by `loop`, and the clock at its finish: (id, finish)."""
    build_world(b)
    acme = add_tenant(b, "acme")
    request, _ = b.requests.submit(acme, spec(), "k")
    assert request.id in loop.run_cycle().placed
    placement = stored(b, request.id).placement
    assert placement is not None
    clock.set(at(placement.finish))
    return request.id, placement.finish


def test_by_default_work_completes_as_placed_charged_its_placement_cost(
    broker: BrokerHandle, clock: SimulatedClock
) -> None:
    b = broker.broker
    request_id, _ = placed_and_over(b, b.scheduling, clock)
    report = b.scheduling.advance()
    assert report.started == (request_id,)
    assert report.completed == (request_id,)
    done = stored(b, request_id)
    assert done.state is S.COMPLETED
    assert done.settled != RECEIPT
    assert done.settled.cpu > 0
    check_books(b, {"acme": MINTED})


def test_the_completion_decides_when_work_ends_and_what_it_is_charged(
    broker: BrokerHandle, clock: SimulatedClock
) -> None:
    b = broker.broker
    receipts = Receipts()
    loop = loop_with(b, completion=receipts)
    request_id, finish = placed_and_over(b, loop, clock)
    report = loop.advance()
    assert receipts.asked == [finish]
    assert report.completed == (request_id,)
    assert report.resolved == (request_id,)
    done = stored(b, request_id)
    assert done.state is S.COMPLETED
    assert done.settled == RECEIPT
    consumed = b.quota.system_accounts()
    assert consumed[(SystemAccount.CONSUMED, Kind.CPU)].credits_posted == RECEIPT.cpu
    assert consumed[(SystemAccount.CONSUMED, Kind.STORAGE)].credits_posted == RECEIPT.storage
    check_books(b, {"acme": MINTED})


def test_the_start_decides_when_placed_work_runs(
    broker: BrokerHandle, clock: SimulatedClock
) -> None:
    b = broker.broker
    loop = loop_with(b, start=NoTicketPulled())
    request_id, _ = placed_and_over(b, loop, clock)
    report = loop.advance()
    assert report.started == ()
    assert report.completed == ()
    assert stored(b, request_id).state is S.PLACED
    # The ticket is pulled: it runs, and the clock's completion ends it.
    loop = loop_with(b, start=TicketsPulled())
    report = loop.advance()
    assert report.started == (request_id,)
    assert report.completed == (request_id,)
    check_books(b, {"acme": MINTED})
