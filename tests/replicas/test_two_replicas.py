"""Two `orbitq serve` processes on one PostgreSQL database, proven (issue 12; brief §12
"several replicas"). PostgreSQL only (SQLite is one process's file); with CI=true it must run.

In one run, with both replicas serving:

- one tenant's transfers, split across both replicas by eight clients, drain its balance to
  the last token: every call is acknowledged or refused for want of tokens (never another
  error), the balance never goes below zero, each acknowledged transfer is stored exactly once
  and nothing else is, and a retry of an acknowledged transfer on the other replica answers
  `exists`;
- Submits racing with one idempotency key on both replicas make one request;
- exactly one replica holds the scheduler's advisory lock and says so, the other never does;
- kill -9 of that leader hands scheduling to the survivor, which places a request submitted to
  it after the kill;
- with both stopped, the books balance with no orphaned reservation, balances equal a replay
  of the transfers, and `orbitq ledger verify` passes (tests/crash/processes.check_after).

Each run is seeded (amounts, which replica a client starts on); RUNS runs (one by default,
ORBITQ_REPLICA_RUNS for more), each on a fresh schema. Settlement "plan": the clock starts and
completes placed work, no node agents.
"""

from __future__ import annotations

import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from orbitq.clients import (
    BrokerClient,
    FailedPreconditionError,
    RequestSpec,
    RetryConfig,
    ServiceRequest,
    new_id,
)
from orbitq.services.scheduling.leader import lock_key
from tests.conftest import EPOCH
from tests.crash.processes import (
    DataDir,
    Serving,
    check_after,
    check_log,
    init_data_dir,
    wait_for,
)
from tests.integration.sky import starlink_text, stations_csv

pytestmark = pytest.mark.postgres

# One run in the suite (time budget); ORBITQ_REPLICA_RUNS=n for more, each on a new schema.
RUNS = int(os.environ.get("ORBITQ_REPLICA_RUNS", "1"))
CLIENTS = 8
LIMIT = 150  # the tenant's cpu tokens: about 75 transfers of 1-3 drain it
LEADER_LINE = "this broker now runs the scheduler"
SETTLE_SECONDS = 60.0
NO_RETRY = RetryConfig(attempts=1)
PLACED_OR_LATER = {"placed", "running", "completed"}


@dataclass
class Books:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[int, int] = field(default_factory=dict)  # operation -> amount
    refused: int = 0
    refusals: set[str] = field(default_factory=set)  # what each refusal said, up to ':'
    lowest_available: int = LIMIT


def job(name: str = "job") -> RequestSpec:
    return RequestSpec(
        name=name,
        workload="image:v1",
        cpu_millicores=1000,
        run_seconds=600,
        storage_mb=500,
        output_mb=200,
        deadline=EPOCH + timedelta(days=2),
    )


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("run", range(RUNS))
def test_two_replicas_share_the_ledger_and_hand_over_scheduling(
    tmp_path: Path, db_url: str, run: int
) -> None:
    rng = random.Random(f"replicas/{run}")
    data = init_data_dir(
        tmp_path / "broker",
        db_url,
        settings={"schedule_interval_seconds": 0.5, "checkpoint_interval_seconds": 2.0},
    )
    replicas = [Serving(data, tmp_path / f"replica-{name}.log") for name in "ab"]
    try:
        _setup(replicas[0], data)
        books = _drain_across(replicas, data, rng)
        _race_one_key(replicas, data)
        leader, survivor = _the_one_leader(replicas, db_url)
        leader.kill()
        placed = _survivor_schedules(survivor, data)
        assert placed.state in PLACED_OR_LATER
    finally:
        for serving in replicas:
            if serving.alive:
                serving.stop()
    facts = check_after(data)
    for serving in replicas:
        check_log(serving.log)
    print(
        f"\n[replicas run {run}] transfers acknowledged {len(books.acked)}"
        f" ({sum(books.acked.values())} of {LIMIT} tokens), refused {books.refused};"
        f" requests {facts.requests}; ledger transfers {facts.transfers}"
    )


def _setup(serving: Serving, data: DataDir) -> None:
    with BrokerClient(serving.target, data.operator_key, timeout=30) as admin:
        for tenant in ("payer", "payee", "acme"):
            admin.create_tenant(tenant)
        admin.mint("payer", cpu=LIMIT)
        admin.mint("acme", cpu=1_000_000, storage=1_000_000, link=1_000_000)
        admin.import_nodes(starlink_text(6))
        admin.import_stations(stations_csv())


def _drain_across(replicas: list[Serving], data: DataDir, rng: random.Random) -> Books:
    """CLIENTS clients, alternating replicas, spend the payer's tokens until none is left."""
    books = Books()
    plans = [(index % 2, random.Random(rng.random())) for index in range(CLIENTS)]

    def spend(first: int, own: random.Random) -> None:
        clients = [
            BrokerClient(r.target, data.operator_key, timeout=30, retry=NO_RETRY) for r in replicas
        ]
        try:
            here = first
            for _ in range(2 * LIMIT):
                amount = own.randint(1, 3)
                operation = new_id()
                try:
                    clients[here].transfer("payee", cpu=amount, from_tenant="payer", id=operation)
                except FailedPreconditionError as refused:
                    with books.lock:
                        books.refused += 1
                        books.refusals.add(str(refused).split(":", 1)[0])
                    if amount == 1:
                        return  # not one token left
                    continue
                with books.lock:
                    books.acked[operation] = amount
                if own.random() < 0.2:
                    # The same operation retried on the other replica is the same transfer.
                    again = clients[1 - here].transfer(
                        "payee", cpu=amount, from_tenant="payer", id=operation
                    )
                    assert [o.result for o in again] == ["exists"]
                (payer,) = [a for a in clients[here].balances("payer") if a.kind == "cpu"]
                with books.lock:
                    books.lowest_available = min(books.lowest_available, payer.available)
                here = 1 - here if own.random() < 0.5 else here
            raise AssertionError("the tokens were never exhausted")
        finally:
            for client in clients:
                client.close()

    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(spend, first, own) for first, own in plans]:
            future.result(timeout=SETTLE_SECONDS)
    assert books.refusals == {"insufficient cpu tokens"}, books.refusals
    assert books.lowest_available >= 0, "the tenant was overdrawn"
    spent = sum(books.acked.values())
    # Each client stopped only when a transfer of 1 was refused: not one token was left.
    assert spent == LIMIT
    with BrokerClient(replicas[1].target, data.operator_key, timeout=30) as admin:
        (payer,) = [a for a in admin.balances("payer") if a.kind == "cpu"]
        (payee,) = [a for a in admin.balances("payee") if a.kind == "cpu"]
        assert (payer.available, payee.available) == (LIMIT - spent, spent)
        history = admin.list_transfers("payer", code="transfer", page_size=1000)
        assert not history.next_page_token
        stored = [int.from_bytes(record.user_data, "big") for record in history.items]
        assert len(stored) == len(set(stored)), "a transfer is stored twice"
        assert set(stored) == set(books.acked), "acknowledged and stored transfers differ"
        for record in history.items:
            assert record.amount == books.acked[int.from_bytes(record.user_data, "big")]
    return books


def _race_one_key(replicas: list[Serving], data: DataDir) -> None:
    """Submits with one key on both replicas at once make one request."""
    clients = [BrokerClient(r.target, data.operator_key, timeout=30) for r in replicas]
    try:
        for key in ("race-1", "race-2", "race-3"):
            with ThreadPoolExecutor(4) as pool:
                futures = [
                    pool.submit(clients[i % 2].submit, job(), idempotency_key=key, tenant="acme")
                    for i in range(4)
                ]
                results = [f.result(timeout=SETTLE_SECONDS) for f in futures]
            assert len({r.request.id for r in results}) == 1, key
            assert sum(r.created for r in results) == 1, key
            assert all(r.request.state != "submitted" for r in results), key
    finally:
        for client in clients:
            client.close()


def _the_one_leader(replicas: list[Serving], db_url: str) -> tuple[Serving, Serving]:
    """The replica that runs the scheduler (it logged so; the other did not), and the other;
    the database shows exactly one holder of the scheduler's advisory lock."""
    wait_for(
        lambda: any(LEADER_LINE in r.new_log() for r in replicas),
        SETTLE_SECONDS,
        "a replica to take the scheduler's lock",
    )
    leading = [r for r in replicas if LEADER_LINE in r.new_log()]
    assert len(leading) == 1, "both replicas ran the scheduler"
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as connection:
            schema = str(connection.exec_driver_sql("SELECT current_schema()").scalar())
            key = lock_key(schema)
            holders = connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid = :high AND objid = :low AND objsubid = 1"
                ),
                {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF},
            ).scalar()
    finally:
        engine.dispose()
    assert holders == 1
    (leader,) = leading
    return leader, replicas[1 - replicas.index(leader)]


def _survivor_schedules(survivor: Serving, data: DataDir) -> ServiceRequest:
    """After the leader's death the survivor takes the lock and places a new request."""
    with BrokerClient(survivor.target, data.operator_key, timeout=30) as client:
        submitted = client.submit(job("after-the-kill"), tenant="acme")
        assert submitted.created
        request_id = submitted.request.id
        found: list[ServiceRequest] = []

        def placed() -> bool:
            found[:] = [client.get_request(request_id)]
            return found[0].state in PLACED_OR_LATER

        wait_for(placed, SETTLE_SECONDS, f"the survivor to place {request_id}")
    assert LEADER_LINE in survivor.new_log(), "placed, but not by the survivor"
    return found[0]
