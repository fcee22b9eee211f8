"""ReportReceipt settlement over gRPC against the Transfer RPC, at the same concurrency.

Settling a request by its usage receipt does more than a transfer: it verifies the node's
COSE_Sign1 signature (Ed25519), checks the receipt against the ticket and the node's
enrolment, appends the receipt to the signed log, moves the request to its end and posts the
charge from escrow (one ledger item per kind) while releasing the rest. The target (issue
11): receipts settle at >= 0.5 x the rate of plain `QuotaService.Transfer` calls made by the
same number of concurrent clients against the same broker.

Setup: a real broker (SQLite file, durable) behind a real gRPC server on loopback (its
start-up heap frozen out of the cyclic collector's walks, as `serve` does), on a simulated
clock; six real satellites; every node enrolled over EnrollNode with ground link "always";
REQUESTS requests with a real module placed by the scheduler, each node's tickets
pulled over PullTickets at their uplink times; then, at a time all have started, CLIENTS
threads report one signed receipt each per call until all are reported (each a fresh
settlement), and CLIENTS threads make the same number of Transfer calls. The two kinds of
call take turns in ROUNDS rounds (a round of each, the order alternating, after a warm-up of
CLIENTS calls of each that is not counted): measured one block after the other, 300 calls of
each moved the ratio between 0.31 and 0.54 with no code change, the transfers' rate alone by
1.7x, on a shared machine. Rates in calls per second of wall time over all rounds; the ratio
receipts / transfers with its target, and each round's ratio beside it.

Environment: ORBITQ_BENCH_RECEIPTS overrides REQUESTS, ORBITQ_BENCH_RECEIPT_CLIENTS CLIENTS,
ORBITQ_BENCH_RECEIPT_ROUNDS ROUNDS.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import grpc

from bench.common import publish
from orbitq.ledger.model import Kind
from orbitq.ledger.receipts import receipt_digest
from orbitq.ledger.tickets import Ticket
from orbitq.services.auth import SYSTEM
from orbitq.services.broker import Broker, init_data_dir
from orbitq.services.clock import SimulatedClock
from orbitq.services.config import load_config
from orbitq.services.requests import RequestState
from orbitq.services.server import build_server, freeze_startup_heap
from orbitq.v1 import agent_pb2, common_pb2, quota_pb2, quota_pb2_grpc
from tests.agents.support import TestAgent, module_bytes
from tests.conftest import EPOCH
from tests.requests.sky import HOUR, T0, add_tenant, at, build_world, spec

REQUESTS = int(os.environ.get("ORBITQ_BENCH_RECEIPTS", "600"))
CLIENTS = int(os.environ.get("ORBITQ_BENCH_RECEIPT_CLIENTS", "8"))
ROUNDS = int(os.environ.get("ORBITQ_BENCH_RECEIPT_ROUNDS", "6"))
TARGET_RATIO = 0.5
CYCLES_MAX = 50
PLENTY = {Kind.CPU: 10**9, Kind.STORAGE: 10**12, Kind.LINK: 10**9}


def _concurrently(calls: list[Callable[[], object]]) -> float:
    """Run `calls` on CLIENTS threads (each takes the next); wall seconds for all."""
    lock = threading.Lock()
    pending = iter(calls)
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                call = next(pending, None)
            if call is None:
                return
            try:
                call()
            except BaseException as error:  # reported after the run
                errors.append(error)
                return

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if errors:
        raise errors[0]
    return seconds


def _rounds(calls: int) -> list[tuple[int, int]]:
    """`calls` split into at most ROUNDS consecutive [first, last) ranges of near-equal size."""
    count = max(1, min(ROUNDS, calls // CLIENTS))
    edges = [calls * k // count for k in range(count + 1)]
    return list(itertools.pairwise(edges))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="orbitq-bench-receipts-") as scratch:
        clock = SimulatedClock(EPOCH)
        data_dir = Path(scratch) / "broker"
        made = init_data_dir(data_dir, origin="bench.orbitq/ledger", clock=clock)
        config = replace(load_config(data_dir), checkpoint_interval_seconds=3600)
        broker = Broker(config, clock)
        broker.writer.start()
        running = build_server(broker, "127.0.0.1:0")
        freeze_startup_heap()  # as `serve` does once the broker serves
        target = f"127.0.0.1:{running.port}"
        operator = (("authorization", f"Bearer {made.operator_key.token}"),)
        try:
            with grpc.insecure_channel(target) as channel:
                result = _measure(broker, clock, channel, operator)
        finally:
            running.stop(grace=1.0)
            broker.scheduling.close()
            broker.requests.close()
            broker.writer.stop()
            broker.engine.dispose()
    publish("receipt_settlement", result)


def _measure(
    broker: Broker,
    clock: SimulatedClock,
    channel: grpc.Channel,
    operator: tuple[tuple[str, str], ...],
) -> dict[str, object]:
    build_world(broker, satellites=6, hours=12)
    acme = add_tenant(broker, "acme", PLENTY)
    add_tenant(broker, "payee")
    digest = broker.blobs.push_workload(acme, module_bytes(), "").digest
    agents: dict[str, TestAgent] = {}
    for node in broker.constellation.nodes():
        token = broker.agents.create_enrollment_token(SYSTEM, node.id, "always", 600).token
        agents[node.id] = TestAgent(channel, node.id, "")
        agents[node.id].enroll(token)
    for index in range(REQUESTS):
        job = replace(
            spec(cpu=250, run=60, storage=10, output=1, deadline=T0 + 11 * HOUR),
            workload=digest,
        )
        broker.requests.submit(acme, job, f"bench-{index}")
    for _ in range(CYCLES_MAX):
        if not broker.scheduling.run_cycle().placed:
            break
    placed = [
        r
        for r in broker.requests.store.all()
        if r.state is RequestState.PLACED and r.placement is not None
    ]
    # Each node pulls its tickets at their uplink times (a ticket is due from its uplink on).
    tickets: dict[str, tuple[bytes, Ticket, TestAgent]] = {}
    for request in sorted(placed, key=lambda r: r.placement.uplink.at if r.placement else 0):
        assert request.placement is not None
        if request.id in tickets:
            continue
        moment = at(request.placement.uplink.at)
        if moment > clock.now():
            clock.set(moment)
        agent = agents[request.placement.node]
        for signed in agent.pull().tickets:
            tickets[signed.request_id] = (signed.envelope, agent.read(signed.envelope), agent)
    latest = max(r.placement.start for r in placed if r.placement is not None)
    clock.set(max(clock.now(), at(latest + 1)))
    receipts = [
        (agent, agent.receipt(envelope, ticket, result=None))
        for envelope, ticket, agent in tickets.values()
    ]
    count = len(receipts)
    assert count >= 2 * CLIENTS, f"only {count} tickets pulled: too few to measure"

    def report(agent: TestAgent, envelope: bytes) -> Callable[[], object]:
        def call() -> object:
            reply = agent.stub.ReportReceipt(
                agent_pb2.ReportReceiptRequest(receipt=envelope),
                metadata=(("authorization", f"Bearer {agent.api_key}"),),
                timeout=60,
            )
            assert reply.receipt_digest == receipt_digest(envelope)
            return reply

        return call

    quota = quota_pb2_grpc.QuotaServiceStub(channel)

    def transfer(index: int) -> Callable[[], object]:
        def call() -> object:
            return quota.Transfer(
                quota_pb2.TransferRequest(
                    from_tenant="acme",
                    to_tenant="payee",
                    amounts=common_pb2.Amounts(cpu=1),
                    id=(10**20 + index).to_bytes(16, "big"),
                ),
                metadata=operator,
                timeout=60,
            )

        return call

    reports = [report(agent, envelope) for agent, envelope in receipts]
    transfers = [transfer(i) for i in range(count)]
    _concurrently(transfers[:CLIENTS])
    _concurrently(reports[:CLIENTS])
    rounds = _rounds(count - CLIENTS)
    transfer_seconds = receipt_seconds = 0.0
    round_ratios: list[float] = []
    for number, (first, last) in enumerate(rounds):
        window = slice(CLIENTS + first, CLIENTS + last)
        # Alternate which kind goes first, so neither always follows the other's garbage.
        if number % 2 == 0:
            spent_transfers = _concurrently(transfers[window])
            spent_receipts = _concurrently(reports[window])
        else:
            spent_receipts = _concurrently(reports[window])
            spent_transfers = _concurrently(transfers[window])
        transfer_seconds += spent_transfers
        receipt_seconds += spent_receipts
        round_ratios.append(spent_transfers / spent_receipts)
    settled = sum(1 for r in broker.requests.store.all() if r.state is RequestState.COMPLETED)
    assert settled == count, f"{settled} of {count} requests completed by their receipts"
    measured = count - CLIENTS
    receipt_rate = measured / receipt_seconds
    transfer_rate = measured / transfer_seconds
    ratio = receipt_rate / transfer_rate
    return {
        "benchmark": "receipt_settlement",
        "clients": CLIENTS,
        "receipts": measured,
        "rounds": len(rounds),
        "round_ratios": [round(r, 3) for r in round_ratios],
        "receipt_settlements_per_second": round(receipt_rate, 1),
        "transfers_per_second": round(transfer_rate, 1),
        "receipt_over_transfer_ratio": round(ratio, 3),
        "target_ratio_min": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
    }


if __name__ == "__main__":
    main()
