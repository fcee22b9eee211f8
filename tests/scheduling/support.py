"""Helpers of the scheduling loop's tests."""

from __future__ import annotations

from orbitq.services.broker import Broker
from orbitq.services.requests import StoredRequest
from orbitq.services.scheduling import Completion, LeaderLock, SchedulingLoop, Start


def stored(broker: Broker, request_id: str) -> StoredRequest:
    found = broker.requests.stored(request_id)
    assert found is not None
    return found


def loop_with(
    broker: Broker, *, start: Start | None = None, completion: Completion | None = None
) -> SchedulingLoop:
    """The broker's loop replaced by one with other seams (the broker fixture closes it)."""
    broker.scheduling.close()
    broker.scheduling = SchedulingLoop(
        broker.requests.store,
        broker.requests.reservations,
        broker.constellation,
        broker.requests.hub,
        LeaderLock(broker.engine),
        broker.clock.now,
        start=start,
        completion=completion,
    )
    return broker.scheduling
