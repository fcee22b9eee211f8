"""RequestService's contract through the real server and SDK, on SQLite and PostgreSQL:
idempotent Submit (a retry, a reused key, two Submits racing with one key), statuses of bad
input, tenant isolation, listing, watching (resumption, the broker's time limit, the limit on
concurrent watches) and the asyncio client."""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest

from orbitq.clients import (
    AlreadyExistsError,
    AsyncBrokerClient,
    BrokerClient,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
)
from orbitq.clients import _calls as client_calls
from orbitq.ledger.model import Kind
from orbitq.services.clock import SimulatedClock
from orbitq.services.requests import service as request_service
from orbitq.services.requests.watch import WatchSlots
from tests.conftest import EPOCH, ServerHandle
from tests.integration.sky import operator, tenant_key
from tests.requests.books import check_books
from tests.requests.rpc import MINTED, job, world_and_tenant
from tests.requests.sky import build_world

# The clock starts and completes placed work (no node agent runs in these tests).
pytestmark = pytest.mark.settlement("plan")

HOUR = timedelta(hours=1)


def test_submit_is_idempotent_per_tenant_and_key(server: ServerHandle) -> None:
    broker = server.broker
    with world_and_tenant(server) as acme:
        first = acme.submit(job(), idempotency_key="nightly-42")
        again = acme.submit(job(), idempotency_key="nightly-42")
        assert first.created
        assert not again.created
        assert again.request == first.request
        # Leaving not_before unset asks for the same request as the first attempt stored.
        unset = acme.submit(job(not_before=None), idempotency_key="unset")
        assert acme.submit(job(not_before=None), idempotency_key="unset").request == unset.request
        with pytest.raises(AlreadyExistsError, match="was already used for another request"):
            acme.submit(job(priority=5), idempotency_key="nightly-42")
        # Another tenant's key space is its own.
        with world_globex(server) as globex:
            theirs = globex.submit(job(), idempotency_key="nightly-42")
            assert theirs.created
            assert theirs.request.id != first.request.id
        assert len(acme.list_requests().items) == 2
    check_books(broker, {"acme": MINTED, "globex": MINTED})


def world_globex(server: ServerHandle) -> BrokerClient:
    key = tenant_key(server, "globex")
    with operator(server) as admin:
        admin.mint("globex", cpu=MINTED[Kind.CPU], storage=MINTED[Kind.STORAGE], link=10_000)
    return BrokerClient(server.target, key, timeout=30)


def test_racing_submits_with_one_key_make_one_request(server: ServerHandle) -> None:
    broker = server.broker
    with world_and_tenant(server) as acme:
        for round_ in range(3):
            key = f"race-{round_}"
            with ThreadPoolExecutor(4) as pool:
                submit = functools.partial(acme.submit, idempotency_key=key)
                results = list(pool.map(submit, [job()] * 4))
            assert len({r.request.id for r in results}) == 1
            assert sum(r.created for r in results) == 1
        # Only the winners' reservations remain; the losers voided theirs.
        assert len(acme.list_requests().items) == 3
    check_books(broker, {"acme": MINTED})


def test_too_few_tokens_reserves_and_stores_nothing(server: ServerHandle) -> None:
    build_world(server.broker)
    key = tenant_key(server, "poor")
    with operator(server) as admin:
        admin.mint("poor", cpu=10_000, storage=100, link=1_000)
    with BrokerClient(server.target, key) as poor:
        with pytest.raises(
            FailedPreconditionError,
            match=r"insufficient storage tokens: poor has 100 MB-hours available, the reservation"
            r" needs 3,000 \(short by 2,900\); nothing was reserved",
        ):
            poor.submit(job())
        assert poor.list_requests().items == []
        assert {a.kind: a.available for a in poor.balances()} == {
            "cpu": 10_000,
            "storage": 100,
            "link": 1_000,
        }
    check_books(server.broker, {"poor": {Kind.CPU: 10_000, Kind.STORAGE: 100, Kind.LINK: 1_000}})


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"cpu_millicores": 0}, InvalidArgumentError, "cpu_millicores is 0"),
        ({"storage_mb": 0}, InvalidArgumentError, "storage_mb is 0"),
        ({"deadline": EPOCH - HOUR, "not_before": EPOCH - 2 * HOUR}, InvalidArgumentError,
         "has passed"),
        ({"deadline": EPOCH + HOUR, "not_before": EPOCH + 2 * HOUR}, InvalidArgumentError,
         "is not after not_before"),
        ({"run_seconds": 7200, "deadline": EPOCH + HOUR}, InvalidArgumentError,
         "longer than the window"),
        ({"priority": 12}, InvalidArgumentError, "priority 12 is out of range"),
        ({"node_ids": ("99999",)}, InvalidArgumentError, "unknown node '99999'"),
        ({"station_ids": ("nowhere",)}, InvalidArgumentError, "unknown station 'nowhere'"),
        ({"station_countries": ("QQ",)}, InvalidArgumentError, "not an ISO 3166-1 alpha-2"),
        ({"name": "n" * 101}, InvalidArgumentError, "name is 101 characters"),
        ({"node_ids": tuple(str(i) for i in range(65))}, InvalidArgumentError,
         "node_ids has 65 items"),
    ],
)  # fmt: skip
def test_bad_specs_get_invalid_argument(
    server: ServerHandle, change: dict[str, object], status: type[Exception], message: str
) -> None:
    with world_and_tenant(server) as acme:
        spec = replace(job(), **change)  # type: ignore[arg-type]
        with pytest.raises(status, match=message):
            acme.submit(spec)
        with pytest.raises(status, match=message):
            acme.quote(spec)
        assert acme.list_requests().items == []


def test_other_refusals(server: ServerHandle, clock: SimulatedClock) -> None:
    broker = server.broker
    with world_and_tenant(server) as acme:
        with pytest.raises(InvalidArgumentError, match="idempotency_key is 129 characters"):
            acme.submit(job(), idempotency_key="k" * 129)
        with pytest.raises(ValueError, match="deadline must be an aware datetime"):
            acme.submit(job(deadline=EPOCH.replace(tzinfo=None)))
        with pytest.raises(ValueError, match="cpu_millicores -1 is negative"):
            acme.submit(job(cpu_millicores=-1))
        with pytest.raises(FailedPreconditionError, match="no node can run this request: cpu"):
            acme.quote(job(cpu_millicores=50_000))
        with pytest.raises(InvalidArgumentError, match="is not 32 hex digits"):
            acme.get_request("nope")
        with pytest.raises(NotFoundError, match="no request 0123"):
            acme.get_request("0123456789abcdef0123456789abcdef")
        with pytest.raises(NotFoundError):
            acme.cancel_request("0123456789abcdef0123456789abcdef")
    with operator(server) as admin:
        with pytest.raises(NotFoundError, match="no tenant named 'ghost'"):
            admin.submit(job(), tenant="ghost")
        with pytest.raises(InvalidArgumentError, match="name the tenant to submit requests for"):
            admin.submit(job())
        node_key = admin.issue_api_key("node", node="44714").api_key
    with BrokerClient(server.target, node_key) as node:
        with pytest.raises(PermissionDeniedError):
            node.submit(job())
        with pytest.raises(PermissionDeniedError):
            node.list_requests()
    assert broker.requests.store.page(None, frozenset(), 10, None) == []


def test_tenants_see_only_their_own_requests(server: ServerHandle) -> None:
    with world_and_tenant(server) as acme, world_globex(server) as globex:
        mine = acme.submit(job(name="mine")).request
        theirs = globex.submit(job(name="theirs")).request
        assert acme.get_request(mine.id) == mine
        for call in (acme.get_request, acme.cancel_request):
            with pytest.raises(NotFoundError, match=f"no request {theirs.id}"):
                call(theirs.id)
        with pytest.raises(NotFoundError):
            list(acme.watch_request(theirs.id))
        with pytest.raises(PermissionDeniedError):
            acme.list_requests(tenant="globex")
        assert [r.id for r in acme.list_requests().items] == [mine.id]
        assert globex.get_request(theirs.id).state == "pending"
    with operator(server) as admin:
        assert {r.id for r in admin.list_requests().items} == {mine.id, theirs.id}
        assert [r.id for r in admin.list_requests(tenant="globex").items] == [theirs.id]
        assert admin.get_request(theirs.id).tenant == "globex"
        on_behalf = admin.submit(job(), tenant="acme")
        assert on_behalf.request.tenant == "acme"


def test_listing_filters_by_state_and_pages_newest_first(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with world_and_tenant(server) as acme:
        ids = []
        for index in range(7):
            ids.append(acme.submit(job(name=f"j{index}")).request.id)
            clock.advance(1)
        acme.cancel_request(ids[0])
        acme.cancel_request(ids[3])
        pages = []
        token = ""
        while True:
            page = acme.list_requests(page_size=3, page_token=token)
            pages.append([r.id for r in page.items])
            if not (token := page.next_page_token):
                break
        assert [len(p) for p in pages] == [3, 3, 1]
        assert [i for p in pages for i in p] == ids[::-1]
        cancelled = acme.list_requests(states=["cancelled"]).items
        assert [r.id for r in cancelled] == [ids[3], ids[0]]
        with pytest.raises(InvalidArgumentError, match="page_token belongs to a different"):
            acme.list_requests(states=["pending"], page_size=3, page_token=page_token(acme))
        with pytest.raises(ValueError, match="unknown request state 'done'"):
            acme.list_requests(states=["done"])


def page_token(client: BrokerClient) -> str:
    return client.list_requests(page_size=1).next_page_token


def test_watch_resumes_after_a_sequence_and_across_the_brokers_time_limit(
    server: ServerHandle, clock: SimulatedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = server.broker
    with world_and_tenant(server) as acme:
        request = acme.submit(job()).request
        broker.scheduling.run_cycle()
        placed = acme.get_request(request.id)
        assert placed.placement is not None
        clock.set(placed.placement.finish)
        broker.scheduling.advance()
        every = [t.sequence for t in acme.watch_request(request.id)]
        assert every == [1, 2, 3, 4, 5]
        resumed = [(t.sequence, t.to_state) for t in acme.watch_request(request.id, 3)]
        assert resumed == [(4, "running"), (5, "completed")]
        assert list(acme.watch_request(request.id, 5)) == []  # nothing after the end
        # A watch the broker ends early (its time limit) is resumed by the SDK, losing nothing.
        monkeypatch.setattr(request_service, "WATCH_SECONDS_MAX", 0.05)
        monkeypatch.setattr(client_calls, "WATCH_QUICK_END_SECONDS", 0.01)
        other = acme.submit(job(name="other")).request
        seen: list[int] = []
        done = threading.Event()

        def follow() -> None:
            seen.extend(t.sequence for t in acme.watch_request(other.id))
            done.set()

        thread = threading.Thread(target=follow)
        thread.start()
        broker.scheduling.run_cycle()
        acme.cancel_request(other.id)
        assert done.wait(30)
        thread.join()
    assert seen == [1, 2, 3, 4]


def test_watches_are_bounded(server: ServerHandle) -> None:
    broker = server.broker
    broker.requests._slots = WatchSlots(total_max=2, per_tenant_max=1)
    with world_and_tenant(server) as acme, world_globex(server) as globex:
        mine = acme.submit(job()).request
        theirs = globex.submit(job()).request
        first = acme.watch_request(mine.id)
        assert next(first).sequence == 1  # the watch is open
        with pytest.raises(ResourceExhaustedError, match="already has 1 open watches"):
            next(acme.watch_request(mine.id))
        second = globex.watch_request(theirs.id)
        assert next(second).sequence == 1
        with operator(server) as admin:
            with pytest.raises(ResourceExhaustedError, match="already serves 2 watches"):
                next(admin.watch_request(mine.id))
            # A watch that reached a terminal state gave its slot back before it ended.
            admin.cancel_request(mine.id)
            admin.cancel_request(theirs.id)
        assert [t.to_state for t in first] == ["pending", "cancelled"]
        assert [t.to_state for t in second] == ["pending", "cancelled"]
        assert [t.to_state for t in acme.watch_request(mine.id, 2)] == ["cancelled"]
    assert broker.requests._slots.open == 0


def test_the_asyncio_client(server: ServerHandle) -> None:
    broker = server.broker
    build_world(broker)
    key = tenant_key(server, "acme")
    with operator(server) as admin:
        admin.mint("acme", cpu=10_000, storage=10_000, link=1_000)

    async def scenario() -> list[str]:
        async with AsyncBrokerClient(server.target, key) as acme:
            quote = await acme.quote(job())
            submitted = await acme.submit(job())
            assert submitted.request.reserved == quote.cost
            assert (await acme.get_request(submitted.request.id)).state == "pending"
            assert len((await acme.list_requests()).items) == 1
            await asyncio.to_thread(broker.scheduling.run_cycle)
            await acme.cancel_request(submitted.request.id)
            return [t.to_state async for t in acme.watch_request(submitted.request.id)]

    assert asyncio.run(scenario()) == ["submitted", "pending", "placed", "cancelled"]
