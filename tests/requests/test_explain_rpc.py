"""Explain, ETA and cancellation terms through the real server and SDK, on SQLite and
PostgreSQL (issue 14, parts 1 and 4).

Every counterfactual the broker offers is checked against the real scheduler: a request that
cannot meet its deadline is told how much later it fits, and submitting it with exactly that
deadline gets it placed (one minute less does not); a request whose station selector is the
obstacle is told which station to allow, and allowing it gets it placed. A placed request's
explanation is its stored plan. Cancelling before the cut-off costs nothing; after it, the fee
is posted from the request's escrow as a `cancel_fee` transfer in the ledger, the rest released.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from orbitq.clients import (
    BrokerClient,
    NotFoundError,
    PermissionDeniedError,
    Placement,
    RequestSpec,
    ServiceRequest,
)
from orbitq.clients.errors import InvalidArgumentError
from orbitq.ledger.audit import audit_store
from orbitq.ledger.model import Kind
from orbitq.services.clock import SimulatedClock
from tests.conftest import EPOCH, ServerHandle
from tests.integration.sky import operator
from tests.requests.books import check_books
from tests.requests.rpc import HOUR, MINTED, job, tenant_with, world_and_tenant

# The clock starts and completes placed work (no node agent runs in these tests).
pytestmark = pytest.mark.settlement("plan")

MINUTE = timedelta(minutes=1)
CUTOFF = timedelta(minutes=15)  # the broker's default cut-off
FEE_LINK = 16  # 100 % of the link tokens of a 200 MB result at the world's downlink rate


def placed(server: ServerHandle, client: BrokerClient, spec: RequestSpec) -> ServiceRequest:
    request = client.submit(spec).request
    server.broker.scheduling.run_cycle()
    return client.get_request(request.id)


def same_plan(planned: Placement, stored: Placement) -> bool:
    """Equal but for the contact list (an ETA's placement carries none)."""
    return replace(planned, contacts=()) == replace(stored, contacts=())


def test_a_request_that_misses_its_deadline_is_told_how_much_later_fits(
    server: ServerHandle,
) -> None:
    with world_and_tenant(server) as acme:
        deadline = EPOCH + HOUR
        waiting = placed(server, acme, job(deadline=deadline))
        assert waiting.state in ("pending", "unschedulable")
        explanation = acme.explain_request(waiting.id)
        eta = explanation.eta
        assert not eta.fits
        assert not eta.planned
        assert eta.placement is None
        # Each plugin's reason with the nodes it turned away: all 20 nodes are accounted for.
        assert eta.reasons
        assert sum(r.nodes for r in eta.reasons) == 20
        assert {r.plugin for r in eta.reasons} <= {"uplink", "downlink", "capacity"}
        later = eta.later_deadline
        assert later is not None
        assert later > timedelta(0)
        assert later.total_seconds() % 60 == 0
        minutes = int(later.total_seconds() // 60)
        assert eta.advice.startswith(f"fits if the deadline is {minutes} min later")
        assert eta.nodes == 20
        assert eta.contacts > 0
        assert eta.probes > 1
        assert explanation.terms.cutoff is None  # not placed: free to cancel
        # The counterfactual is the real scheduler's: one minute less still does not fit ...
        almost = placed(server, acme, job(name="almost", deadline=deadline + later - MINUTE))
        assert almost.state in ("pending", "unschedulable")
        # ... and exactly that much later is placed.
        fits = placed(server, acme, job(name="fits", deadline=deadline + later))
        assert fits.state == "placed"
        assert fits.placement is not None
        assert fits.placement.finish <= deadline + later
        # Explaining changed nothing: the waiting request is where it was.
        assert acme.get_request(waiting.id).sequence == waiting.sequence


def test_a_request_held_back_by_its_stations_is_told_which_to_allow(
    server: ServerHandle,
) -> None:
    with world_and_tenant(server) as acme:
        # These Starlink shells never rise over Svalbard (78 N).
        stuck = placed(server, acme, job(station_ids=("svalbard",)))
        assert stuck.state in ("pending", "unschedulable")
        eta = acme.explain_request(stuck.id).eta
        assert not eta.fits
        assert [(r.plugin, r.nodes) for r in eta.reasons] == [("station_selector", 20)]
        assert eta.allow_stations, eta.advice
        stations = ", ".join(eta.allow_stations)
        assert f"with station{'s' if len(eta.allow_stations) > 1 else ''} {stations} allowed" in (
            eta.advice
        )
        widened = ("svalbard", *eta.allow_stations)
        fits = placed(server, acme, job(name="widened", station_ids=widened))
        assert fits.state == "placed"


def test_a_placed_request_shows_its_planned_times_and_terms(server: ServerHandle) -> None:
    with world_and_tenant(server) as acme:
        quoted = acme.quote(job(not_before=EPOCH + 2 * HOUR), eta=True).eta
        assert quoted is not None
        assert quoted.placement is not None
        request = placed(server, acme, job(not_before=EPOCH + 2 * HOUR))
        assert request.state == "placed"
        assert request.placement is not None
        explanation = acme.explain_request(request.id)
        eta, terms = explanation.eta, explanation.terms
        assert eta.fits
        assert eta.planned
        assert eta.placement is not None
        assert same_plan(eta.placement, request.placement)
        assert eta.probes == 0  # the stored plan: nothing computed
        # The quoted ETA was the earliest completion over every node; the live cycle, which
        # also weighs packing, finishes no sooner.
        assert quoted.placement.finish <= request.placement.finish
        assert terms.cutoff == request.placement.uplink_at - CUTOFF
        assert (terms.cutoff_seconds, terms.fee_percent) == (900, 100)
        assert terms.fee.link == FEE_LINK
        assert terms.fee.cpu == terms.fee.storage == 0
        assert terms.due_now.link == 0  # the cut-off is ahead


def test_quote_gives_the_eta_the_terms_and_the_tokens_short(server: ServerHandle) -> None:
    with world_and_tenant(server, cpu=100) as acme:
        quote = acme.quote(job(not_before=EPOCH + 2 * HOUR), eta=True)
        assert quote.cost.cpu == 600
        eta, terms = quote.eta, quote.terms
        assert eta is not None
        assert terms is not None
        assert eta.fits
        assert not eta.planned
        assert eta.placement is not None
        plan = eta.placement
        assert EPOCH + 2 * HOUR <= plan.uplink_at < plan.uplink_end <= plan.start
        assert plan.end - plan.start == timedelta(seconds=600)
        assert plan.finish <= EPOCH + 6 * HOUR
        assert (eta.short.cpu, eta.short.storage, eta.short.link) == (500, 0, 0)
        assert eta.advice.startswith("fits now: node ")
        assert "Submit would be refused: cpu 500 tokens short" in eta.advice
        assert terms.cutoff == plan.uplink_at - CUTOFF
        assert terms.fee.link == FEE_LINK
        # Without eta: only the cost, as before.
        plain = acme.quote(job())
        assert plain.eta is None
        assert plain.terms is None
        # A deadline no placement can meet: the smallest change, before submission.
        tight = acme.quote(job(deadline=EPOCH + HOUR), eta=True)
        assert tight.eta is not None
        assert not tight.eta.fits
        assert tight.eta.later_deadline is not None
        assert tight.eta.advice.startswith("fits if the deadline is")
        assert "Submit needs cpu 500 tokens more" in tight.eta.advice


def test_cancelling_before_the_cut_off_is_free_and_after_it_costs_the_fee(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    broker = server.broker
    with world_and_tenant(server) as acme:
        early = placed(server, acme, job(name="early", not_before=EPOCH + 2 * HOUR))
        late = placed(server, acme, job(name="late", not_before=EPOCH + 3 * HOUR))
        assert early.placement is not None
        assert late.placement is not None
        assert early.state == late.state == "placed"
        # Before the cut-off: free, everything released.
        clock.set(early.placement.uplink_at - CUTOFF - timedelta(seconds=1))
        free = acme.cancel(early.id)
        assert free.request.state == "cancelled"
        assert (free.charged.cpu, free.charged.storage, free.charged.link) == (0, 0, 0)
        assert free.terms.cutoff == early.placement.uplink_at - CUTOFF
        # At the cut-off (still placed, not yet uplinked): the fee.
        clock.set(late.placement.uplink_at - CUTOFF)
        before = acme.explain_request(late.id).terms
        assert before.due_now.link == FEE_LINK
        assert "past its cut-off" in before.summary
        charged = acme.cancel(late.id)
        assert charged.request.state == "cancelled"
        assert (charged.charged.cpu, charged.charged.storage) == (0, 0)
        assert charged.charged.link == FEE_LINK
        assert "after its cut-off" in charged.request.reason
        # Cancelling again answers the same charge and moves no token.
        assert acme.cancel(late.id).charged == charged.charged
        fees = acme.list_transfers(code="cancel_fee").items
    assert [(t.kind, t.amount, t.user_data) for t in fees] == [
        ("link", FEE_LINK, bytes.fromhex(late.id))
    ]
    check_books(broker, {"acme": MINTED})
    with operator(server) as admin:
        link = {a.kind: a.available for a in admin.balances("acme")}["link"]
    assert link == MINTED[Kind.LINK] - FEE_LINK
    # The fee is in the signed log, and the full audit (ledger verify's) accepts it.
    broker.sign_checkpoint()
    report = audit_store(broker.store, broker.signer.verifier())
    assert report.transfers > 0


def test_explain_refuses_unknown_ids_and_other_tenants_requests(server: ServerHandle) -> None:
    with world_and_tenant(server) as acme, tenant_with(server, "globex") as globex:
        mine = acme.submit(job()).request
        with pytest.raises(NotFoundError, match="no request"):
            acme.explain_request("0" * 32)
        with pytest.raises(InvalidArgumentError, match="32 hex digits"):
            acme.explain_request("not-an-id")
        with pytest.raises(PermissionDeniedError, match="another tenant"):
            globex.explain_request(mine.id)
        with pytest.raises(PermissionDeniedError):
            globex.quote(job(), eta=True, tenant="acme")
        with operator(server) as admin:
            assert admin.explain_request(mine.id).request.id == mine.id


def test_an_ended_request_says_nothing_will_be_placed(server: ServerHandle) -> None:
    with world_and_tenant(server) as acme:
        request = acme.submit(job()).request
        acme.cancel_request(request.id)
        eta = acme.explain_request(request.id).eta
    assert not eta.fits
    assert eta.placement is None
    assert eta.advice.startswith("it is cancelled: nothing will be placed")
