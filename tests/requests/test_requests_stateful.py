"""Random sequences of submissions (some short of tokens, some reusing a key), cancellations,
scheduling cycles, node faults and the clock moving on, through the real broker on SQLite and
PostgreSQL: after every step no token has leaked — escrow holds exactly the reservations of live
requests, every settled token reached consumed, each tenant holds minted - settled - reserved —
and the ledger's balance invariants hold; after each example the whole ledger replays."""

from __future__ import annotations

import secrets

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from orbitq.ledger.model import Kind
from orbitq.services.auth import Principal
from orbitq.services.broker import Broker
from orbitq.services.clock import SimulatedClock, to_ns
from orbitq.services.errors import AlreadyExistsError, FailedPreconditionError
from orbitq.services.requests import RequestState
from tests.conftest import BrokerHandle
from tests.requests.books import check_books
from tests.requests.sky import OPERATOR, add_tenant, build_world, spec

# The clock starts and completes placed work (no node agent runs in these tests).
pytestmark = pytest.mark.settlement("plan")

S = RequestState
HOUR = 3600
# Enough for a handful of requests: later ones run short of storage tokens.
MINTED = {Kind.CPU: 50_000, Kind.STORAGE: 12_000, Kind.LINK: 2_000}
SIZES = [
    (500, 300, 200, 50),  # cpu millicores, run seconds, storage MB, output MB
    (2000, 1200, 1000, 400),
    (4000, 3600, 8000, 0),
    (9000, 600, 100, 10),  # larger than every node: unschedulable at once
]


def request_machine(broker: Broker, clock: SimulatedClock) -> type[RuleBasedStateMachine]:
    minted: dict[str, dict[Kind, int]] = {}
    node_ids = [node.id for node in broker.constellation.nodes()]

    # A fixed seed, not derandomize's digest of this class's source: an edit of the source
    # (a changed call) would otherwise choose other walks, and the walks must reach the paths
    # the test names below.
    @seed(0)
    class RequestMachine(RuleBasedStateMachine):
        requests = Bundle("requests")

        @initialize()
        def open_tenant(self) -> None:
            # Examples share the database and the clock, which only moves on: each gets a
            # tenant of its own and a contact plan around its own now.
            name = f"t{secrets.token_hex(4)}"
            self.tenant: Principal = add_tenant(broker, name, MINTED)
            minted[name] = dict(MINTED)
            broker.constellation.refresh_contacts(horizon_hours=10)
            for node in node_ids:
                broker.constellation.set_node_state(OPERATOR, node, "ready")

        def _now_s(self) -> int:
            return to_ns(clock.now()) // 1_000_000_000

        @rule(
            target=requests,
            size=st.sampled_from(SIZES),
            start_in=st.integers(0, 2 * HOUR),
            window=st.integers(1, 6),
            priority=st.integers(0, 3),
            key=st.sampled_from(["a", "b", "", "", ""]),
        )
        def submit(
            self,
            size: tuple[int, int, int, int],
            start_in: int,
            window: int,
            priority: int,
            key: str,
        ) -> object:
            cpu, run, storage, output = size
            not_before = self._now_s() + start_in
            wanted = spec(
                cpu=cpu,
                run=run,
                storage=storage,
                output=output,
                not_before=not_before,
                deadline=not_before + window * HOUR,
                priority=priority,
            )
            before = {r.id for r in broker.requests.store.all()}
            try:
                request, created = broker.requests.submit(self.tenant, wanted, key)
            except FailedPreconditionError as error:
                refused = error.message
                assert {r.id for r in broker.requests.store.all()} == before
                assert "nothing was reserved" in refused
                return multiple()
            except AlreadyExistsError:
                assert key
                return multiple()
            assert created == (request.id not in before)
            if cpu > 4000:
                assert request.state is S.UNSCHEDULABLE
            return request.id

        @rule(request=requests)
        def cancel(self, request: str) -> None:
            state = broker.requests.stored(request)
            assert state is not None
            try:
                done = broker.requests.cancel(self.tenant, request)
            except FailedPreconditionError:
                after = broker.requests.stored(request)
                assert after is not None
                assert after.state is S.RUNNING or after.state.terminal
                assert after.state is not S.CANCELLED
                return
            assert done.state is S.CANCELLED
            assert not done.reservation_open

        @rule()
        def cycle(self) -> None:
            assert broker.scheduling.run_cycle().ran

        @rule(seconds=st.integers(10, 2 * HOUR))
        def time_passes(self, seconds: int) -> None:
            clock.advance(seconds)
            broker.expire_due()
            assert broker.scheduling.advance().ran

        @precondition(lambda self: bool(node_ids))
        @rule(node=st.sampled_from(node_ids), down=st.booleans())
        def node_state(self, node: str, down: bool) -> None:
            broker.constellation.set_node_state(OPERATOR, node, "down" if down else "ready")

        @invariant()
        def no_token_leaks(self) -> None:
            check_books(broker, minted, replay=False)

        def teardown(self) -> None:
            check_books(broker, minted, replay=True)

    return RequestMachine


def test_no_token_leaks_under_random_operations(
    broker: BrokerHandle, clock: SimulatedClock
) -> None:
    build_world(broker.broker)
    machine = request_machine(broker.broker, clock)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=20,
            stateful_step_count=25,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    # The walks (derandomized: the same every run) reached the paths that matter.
    reached = {r.state for r in broker.broker.requests.store.all()}
    assert {S.COMPLETED, S.CANCELLED, S.UNSCHEDULABLE, S.EXPIRED} <= reached, reached
