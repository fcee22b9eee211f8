"""Many clients spending from one account at once: never overdrawn, nothing lost, nothing twice.

Real gRPC clients on their own channels and threads, a real broker with its group-commit
writer, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from orbitq.clients import BrokerClient, FailedPreconditionError, new_id
from tests.conftest import ServerHandle

CLIENTS = 12
TRANSFERS_PER_CLIENT = 15
AMOUNT = 7
BALANCE = 500  # far less than CLIENTS * TRANSFERS_PER_CLIENT * AMOUNT = 1,260


def test_concurrent_spenders_never_overdraw_or_lose_a_transfer(server: ServerHandle) -> None:
    with BrokerClient(server.target, server.operator_key) as admin:
        admin.create_tenant("payer")
        for index in range(CLIENTS):
            admin.create_tenant(f"payee-{index}")
        admin.mint("payer", cpu=BALANCE)
        payer_key = admin.issue_api_key("tenant", "payer").api_key
    start = threading.Barrier(CLIENTS)
    refusals: list[str] = []

    def spend(index: int) -> tuple[list[int], int]:
        accepted: list[int] = []
        refused = 0
        with BrokerClient(server.target, payer_key, timeout=30) as client:
            start.wait()
            for _ in range(TRANSFERS_PER_CLIENT):
                operation = new_id()
                try:
                    client.transfer(f"payee-{index}", cpu=AMOUNT, id=operation)
                except FailedPreconditionError as error:
                    refusals.append(error.details)
                    refused += 1
                    continue
                accepted.append(operation)
                # A retry of an acknowledged operation changes nothing.
                again = client.transfer(f"payee-{index}", cpu=AMOUNT, id=operation)
                assert [outcome.result for outcome in again] == ["exists"]
        return accepted, refused

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(spend, range(CLIENTS)))
    accepted = sum(len(ok) for ok, _ in results)
    refused = sum(refused for _, refused in results)
    assert accepted + refused == CLIENTS * TRANSFERS_PER_CLIENT
    assert all("insufficient cpu tokens" in details for details in refusals)
    assert accepted == BALANCE // AMOUNT  # every token that could be spent was, and no more
    with BrokerClient(server.target, server.operator_key) as admin:
        (payer_cpu,) = [a for a in admin.balances("payer") if a.kind == "cpu"]
        assert payer_cpu.available == BALANCE - accepted * AMOUNT >= 0
        received = 0
        for index, (ok, _) in enumerate(results):
            (cpu,) = [a for a in admin.balances(f"payee-{index}") if a.kind == "cpu"]
            assert cpu.available == len(ok) * AMOUNT
            received += cpu.available
        assert received == accepted * AMOUNT
        history = admin.list_transfers("payer", code="transfer", page_size=1000).items
        assert len(history) == accepted
    server.broker.store.check_invariants()
