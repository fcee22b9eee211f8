"""The explainer's searches in-process, over many requests (SQLite and PostgreSQL): the later
deadline it finds is the least whole minute that fits on the same copy, the stations it names
fit, and asking changes neither the stored requests nor the leader's live scheduler."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orbitq.services.auth import Principal
from orbitq.services.errors import ResourceExhaustedError
from orbitq.services.explaining import probe as probes
from orbitq.services.explaining.scratch import build
from orbitq.services.identity.api_keys import Role
from orbitq.services.requests import DEADLINE_AHEAD_SECONDS_MAX
from tests.conftest import BrokerHandle
from tests.requests.sky import HOUR, OPERATOR, T0, add_tenant, build_world, spec

pytestmark = pytest.mark.settlement("plan")

MINUTE = 60


def test_the_later_deadline_is_the_least_minute_that_fits(broker: BrokerHandle) -> None:
    b = broker.broker
    build_world(b)
    acme = add_tenant(b, "acme")
    for index in range(6):  # some placed work in the way
        b.requests.submit(acme, spec(run=1800, deadline=T0 + (2 + index) * HOUR))
    b.scheduling.run_cycle()
    live = b.scheduling.scheduler.placements()
    assert live
    scratch = build(b.constellation, b.requests.store, T0, agents_required=False)
    scheduler = scratch.scheduler
    found = 0
    for offset in (15, 25, 40, 60, 75, 90):
        for run in (300, 900, 1500):
            if offset * MINUTE <= run:
                continue
            wanted = spec(run=run, deadline=T0 + offset * MINUTE).request("r" * 32, "acme", T0)
            if probes.probe(scheduler, wanted, T0).placement is not None:
                continue
            search = probes.later_deadline(
                scheduler, wanted, T0, scratch.contacts_until, T0 + DEADLINE_AHEAD_SECONDS_MAX
            )
            if search.extra_seconds is None:
                continue
            found += 1
            extra = search.extra_seconds
            assert extra % MINUTE == 0
            later = replace(wanted, deadline=wanted.deadline + extra)
            assert probes.probe(scheduler, later, T0).placement == search.placement
            if extra > MINUTE:
                sooner = replace(wanted, deadline=wanted.deadline + extra - MINUTE)
                assert probes.probe(scheduler, sooner, T0).placement is None
            assert search.probes <= probes.PROBES_MAX
    assert found >= 5  # the cases above do exercise the search
    # Questions change nothing: the live scheduler and the stored requests stay as they were.
    tight, _ = b.requests.submit(acme, spec(deadline=T0 + HOUR))
    stored = {r.id: (r.state, r.sequence) for r in b.requests.store.all()}
    explained = b.explainer.explain(OPERATOR, tight.id)
    assert explained.eta.probes > 1
    assert b.scheduling.scheduler.placements() == live
    assert {r.id: (r.state, r.sequence) for r in b.requests.store.all()} == stored


def test_one_computation_at_a_time_per_key(broker: BrokerHandle) -> None:
    """A caller in a loop holds at most one of the explainer's slots: its second concurrent
    question is refused at once, while another key still gets the other slot."""
    explainer = broker.broker.explainer
    looping = Principal("k-loop", Role.TENANT, "acme")
    other = Principal("k-other", Role.TENANT, "globex")
    with explainer._slot(looping):
        with (
            pytest.raises(ResourceExhaustedError, match="one at a time per key"),
            explainer._slot(looping),
        ):
            pass
        with explainer._slot(other):
            pass
    with explainer._slot(looping):  # released: the key may ask again
        pass
