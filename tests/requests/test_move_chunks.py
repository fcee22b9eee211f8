"""RequestStore.apply's rules: a large batch of moves commits in bounded transactions, every
move of one request lands in the same transaction, in order; a move bound to a sequence applies
only to that version of its request."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import RequestState
from orbitq.services.requests.store import _chunks_by_request
from tests.conftest import BrokerHandle
from tests.requests.sky import HOUR, T0, add_tenant, build_world, spec

# The requests here need no node agent (the clock, not receipts, would run them).
pytestmark = pytest.mark.settlement("plan")


def _moves(request_ids: list[str]) -> list[Move]:
    return [
        Move(rid, frozenset({RequestState.PENDING}), RequestState.CANCELLED, "test")
        for rid in request_ids
    ]


@given(
    st.lists(st.sampled_from([f"r{i}" for i in range(40)]), max_size=200),
    st.integers(min_value=1, max_value=16),
)
def test_chunks_cover_every_move_once_and_keep_a_request_together(
    request_ids: list[str], requests_max: int
) -> None:
    moves = _moves(request_ids)
    chunks = _chunks_by_request(moves, requests_max)
    flat = [index for chunk in chunks for index in chunk]
    assert sorted(flat) == list(range(len(moves)))
    chunk_of: dict[str, int] = {}
    for number, chunk in enumerate(chunks):
        assert chunk, "no empty transaction"
        assert chunk == sorted(chunk), "the moves' order is kept within a chunk"
        named = {moves[index].request_id for index in chunk}
        assert len(named) <= requests_max
        for request_id in named:
            assert chunk_of.setdefault(request_id, number) == number


def test_a_batch_within_the_bound_is_one_transaction() -> None:
    moves = _moves([f"r{i % 5}" for i in range(30)])
    assert _chunks_by_request(moves, 5) == [list(range(30))]
    assert len(_chunks_by_request(moves, 2)) == 3


def test_a_move_for_an_older_version_of_the_request_does_not_apply(
    broker: BrokerHandle,
) -> None:
    """A move worked out from one version of a request (a cancellation's fee from its
    placement) is refused once the request moved on, even back to the same state."""
    b = broker.broker
    build_world(b)
    acme = add_tenant(b, "acme")
    submitted, _ = b.requests.submit(acme, spec(run=600, deadline=T0 + 6 * HOUR))
    store = b.requests.store
    stale = Move(
        submitted.id,
        frozenset({RequestState.PENDING}),
        RequestState.CANCELLED,
        "test",
        sequence=submitted.sequence - 1,
    )
    assert store.apply([stale], T0 * 10**9) == [None]
    current = replace(stale, sequence=submitted.sequence)
    (moved,) = store.apply([current], T0 * 10**9)
    assert moved is not None
    assert moved.state is RequestState.CANCELLED
