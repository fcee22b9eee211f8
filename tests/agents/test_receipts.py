"""Usage receipts over a real broker on loopback (SQLite and PostgreSQL), signed with real
Ed25519 node keys: a verified receipt completes and settles its request from escrow against
the receipt (user_data = SHA-256 of the receipt, the receipt in the signed log, escrow back to
zero); the same receipt again is idempotent, another is ALREADY_EXISTS; every kind of bad
receipt settles nothing, gets its own status and is recorded; workload faults are charged,
aborted runs refunded."""

from __future__ import annotations

import hashlib
import secrets

import grpc
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orbitq.ledger.model import Code, Kind, SystemAccount, id_from_bytes
from orbitq.ledger.receipts import RunOutcome, charge_of, open_receipt
from orbitq.services.agents.tables import RECEIPT_REFUSALS
from orbitq.services.broker import Broker
from orbitq.services.clock import SimulatedClock
from orbitq.services.requests import RequestState
from orbitq.services.requests.model import Fault
from orbitq.services.requests.reservations import KINDS, Step, transfer_id
from orbitq.services.scheduler import Cost
from orbitq.v1 import ledger_pb2, request_pb2, request_pb2_grpc
from tests.agents.support import AgentWorld, agent_world
from tests.conftest import ServerHandle
from tests.requests.books import check_books
from tests.requests.sky import MINTED, tenant

S = RequestState
CODE = grpc.StatusCode


def _refusals(broker: Broker) -> list[tuple[str, str]]:
    with broker.engine.connect() as connection:
        rows = connection.execute(
            sa.select(RECEIPT_REFUSALS.c.reason, RECEIPT_REFUSALS.c.request_id).order_by(
                RECEIPT_REFUSALS.c.id
            )
        )
        return [(str(reason), str(request_id)) for reason, request_id in rows]


def _settle_transfers(broker: Broker, request_id: str) -> dict[Kind, tuple[int, bytes, int]]:
    """Per kind: (amount, user_data, code) of the request's settling transfer."""
    found = {}
    for kind in KINDS:
        stored = broker.store.transfer(transfer_id(request_id, Step.SETTLE, kind))
        if stored is not None:
            t = stored.transfer
            found[kind] = (t.amount, t.user_data, t.code)
    return found


def test_a_verified_receipt_completes_and_settles_against_itself(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        broker = world.broker
        request, envelope, ticket = world.running(output_mb=1)
        result = secrets.token_bytes(5000)
        world.agent.upload(request.id, result)
        world.finish(ticket)
        receipt = world.agent.receipt(envelope, ticket, result=result, fuel=40 * 10**9)
        digest = hashlib.sha256(receipt).digest()
        reply = world.agent.report(receipt)
        assert reply.receipt_digest == digest
        done = world.stored(request.id)
        assert done.state is S.COMPLETED
        assert done.receipt_digest == digest
        assert done.result_digest == hashlib.sha256(result).hexdigest()
        assert done.result_bytes == len(result)
        assert not done.reservation_open
        used = charge_of(open_receipt(receipt, world.agent.public_key, world.agent.kid))
        assert used.cpu == 3  # ceil(40e9 / 15e9)
        expected = Cost(
            min(used.cpu, request.reserved.cpu),
            min(used.storage, request.reserved.storage),
            min(used.link, request.reserved.link),
        )
        assert done.settled == expected
        # The settling transfers carry SHA-256 of the receipt; the receipt precedes them.
        settles = _settle_transfers(broker, request.id)
        assert {kind: amount for kind, (amount, _, _) in settles.items()} == {
            kind: getattr(expected, kind.label) for kind in KINDS if getattr(expected, kind.label)
        }
        assert all(user_data == digest for _, user_data, _ in settles.values())
        assert all(code == Code.SETTLE for _, _, code in settles.values())
        (index, entry), *_ = broker.store.entries(reply.entry_index, reply.entry_index + 1)
        recorded = ledger_pb2.LedgerEntry.FromString(entry).receipt_recorded
        assert (recorded.request_id, recorded.node, recorded.receipt) == (
            request.id,
            world.agent.node,
            receipt,
        )
        # Escrow is back to zero; consumed holds exactly the charge.
        accounts = broker.quota.system_accounts()
        for kind in KINDS:
            escrow = accounts[(SystemAccount.ESCROW, kind)]
            assert escrow.credits_pending == 0
            assert escrow.debits_posted == escrow.credits_posted
        check_books(broker, {"acme": MINTED})
        # The request says so over the API, and GetEvidence hands out what backs it.
        metadata = (("authorization", f"Bearer {server.operator_key}"),)
        stub = request_pb2_grpc.RequestServiceStub(world.channel)
        shown = stub.GetRequest(request_pb2.GetRequestRequest(id=request.id), metadata=metadata)
        assert shown.request.receipt_digest == digest
        assert shown.request.outcome == request_pb2.RUN_OUTCOME_OK
        assert shown.request.result == "sha256:" + hashlib.sha256(result).hexdigest()
        evidence = stub.GetEvidence(
            request_pb2.GetEvidenceRequest(id=request.id), metadata=metadata
        )
        assert evidence.ticket == envelope
        assert evidence.receipt == receipt
        assert evidence.receipt_entry_index == index
        assert evidence.node_public_key == world.agent.public_key
        assert sorted(id_from_bytes(t) for t in evidence.settlement_transfer_ids) == sorted(
            transfer_id(request.id, Step.SETTLE, kind) for kind in settles
        )
        # The same receipt again: the same answer, nothing settled twice.
        size = broker.store.head().size
        again = world.agent.report(receipt)
        assert (again.receipt_digest, again.entry_index) == (reply.receipt_digest, index)
        assert broker.store.head().size == size
        # Another receipt for the settled request.
        other = world.agent.receipt(envelope, ticket, result=result, fuel=41 * 10**9)
        with pytest.raises(grpc.RpcError) as twice:
            world.agent.report(other)
        assert twice.value.code() is CODE.ALREADY_EXISTS
        assert _refusals(broker) == [("settled", request.id)]


def _tamper(envelope: bytes) -> bytes:
    flipped = bytearray(envelope)
    flipped[-1] ^= 0x01  # the signature's last byte
    return bytes(flipped)


def test_every_bad_receipt_is_refused_recorded_and_settles_nothing(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        broker = world.broker
        other_node = world.others[0]
        neighbour = world.enroll(other_node)
        request, envelope, ticket = world.running(output_mb=1)
        world.finish(ticket)
        agent = world.agent
        stranger = Ed25519PrivateKey.generate()
        result = b"r" * 100
        cases: list[tuple[str, bytes, grpc.StatusCode]] = [
            ("malformed", b"not a receipt", CODE.INVALID_ARGUMENT),
            ("bad_signature", _tamper(agent.receipt(envelope, ticket)), CODE.INVALID_ARGUMENT),
            ("bad_signature", agent.receipt(envelope, ticket, key=stranger), CODE.INVALID_ARGUMENT),
            ("unknown_key", neighbour.receipt(envelope, ticket), CODE.INVALID_ARGUMENT),
            (
                "wrong_node",
                agent.receipt(envelope, ticket, node=other_node),
                CODE.PERMISSION_DENIED,
            ),
            (
                "unknown_request",
                agent.receipt(envelope, ticket, request_id=secrets.token_hex(16)),
                CODE.NOT_FOUND,
            ),
            (
                "wrong_ticket",
                agent.receipt(envelope, ticket, ticket_sha256=bytes(32)),
                CODE.INVALID_ARGUMENT,
            ),
            (
                "over_limits",
                agent.receipt(envelope, ticket, fuel=ticket.fuel_max + 1),
                CODE.INVALID_ARGUMENT,
            ),
            (
                "wrong_usage",
                agent.receipt(envelope, ticket, cpu_core_seconds=7),
                CODE.INVALID_ARGUMENT,
            ),
            (
                "over_limits",
                agent.receipt(envelope, ticket, result=bytes(1_000_001)),
                CODE.INVALID_ARGUMENT,
            ),
            (
                "wrong_usage",
                agent.receipt(envelope, ticket, link_seconds=99),
                CODE.INVALID_ARGUMENT,
            ),
            (
                "wrong_usage",
                agent.receipt(envelope, ticket, runtime="wasmtime 1.0.0"),
                CODE.INVALID_ARGUMENT,
            ),
            (
                "wrong_times",
                agent.receipt(envelope, ticket, start=ticket.start - 61),
                CODE.INVALID_ARGUMENT,
            ),
            (
                "wrong_times",
                agent.receipt(envelope, ticket, end=request.spec.deadline + 1801),
                CODE.INVALID_ARGUMENT,
            ),
            ("no_result", agent.receipt(envelope, ticket, result=result), CODE.FAILED_PRECONDITION),
        ]
        size = broker.store.head().size
        for reason, receipt, code in cases:
            with pytest.raises(grpc.RpcError) as refused:
                agent.report(receipt)
            assert refused.value.code() is code, (reason, refused.value.details())
            assert f"({reason})" in (refused.value.details() or ""), reason
        assert [reason for reason, _ in _refusals(broker)] == [reason for reason, _, _ in cases]
        assert broker.store.head().size == size  # nothing reached the ledger
        still = world.stored(request.id)
        assert still.state is S.RUNNING
        assert still.reservation_open
        # The node's neighbour cannot report for this node's request even with its own key.
        with pytest.raises(grpc.RpcError) as foreign:
            neighbour.report(neighbour.receipt(envelope, ticket, node=other_node))
        assert foreign.value.code() is CODE.PERMISSION_DENIED
        # And the good receipt still settles.
        agent.upload(request.id, result)
        assert agent.report(agent.receipt(envelope, ticket, result=result)).receipt_digest
        check_books(broker, {"acme": MINTED})


def test_a_receipt_before_the_start_is_refused(server: ServerHandle, clock: SimulatedClock) -> None:
    with agent_world(server, clock) as world:
        request, envelope, ticket = world.pulled()
        with pytest.raises(grpc.RpcError) as early:
            world.agent.report(world.agent.receipt(envelope, ticket))
        assert early.value.code() is CODE.FAILED_PRECONDITION
        assert world.stored(request.id).state is S.PLACED


def _world_charged(world: AgentWorld, outcome: RunOutcome) -> tuple[str, bytes]:
    request, envelope, ticket = world.running(output_mb=1)
    world.finish(ticket)
    receipt = world.agent.receipt(envelope, ticket, result=None, outcome=outcome, fuel=10**9)
    world.agent.report(receipt)
    return request.id, hashlib.sha256(receipt).digest()


def test_a_workload_fault_is_charged(server: ServerHandle, clock: SimulatedClock) -> None:
    with agent_world(server, clock) as world:
        broker = world.broker
        trapped, digest = _world_charged(world, RunOutcome.TRAP)
        failed = world.stored(trapped)
        assert failed.state is S.FAILED
        assert failed.fault is Fault.WORKLOAD
        assert failed.settled.cpu == 1  # ceil(1e9 / 15e9): what it used
        settles = _settle_transfers(broker, trapped)
        assert settles
        assert all(user_data == digest for _, user_data, _ in settles.values())
        check_books(broker, {"acme": MINTED})


def test_an_aborted_run_is_refunded(server: ServerHandle, clock: SimulatedClock) -> None:
    with agent_world(server, clock) as world:
        broker = world.broker
        aborted, _ = _world_charged(world, RunOutcome.ABORTED)
        lost = world.stored(aborted)
        assert lost.state is S.FAILED
        assert lost.fault is Fault.OPERATOR
        assert lost.settled == Cost(0, 0, 0)
        releases = [
            broker.store.transfer(transfer_id(aborted, Step.RELEASE, kind)) for kind in KINDS
        ]
        codes = {t.transfer.code for t in releases if t is not None}
        assert codes == {Code.REFUND}
        check_books(broker, {"acme": MINTED})
        shown = broker.requests.get(tenant("acme"), aborted)
        assert shown.receipt_digest is not None


def test_a_receipt_the_ledger_could_not_take_is_not_half_taken_and_settles_once_later(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    """The receipt's row, the request's end and its settlement are one ledger item: with the
    ledger unavailable none of them is written (no receipt stored without its settlement); the
    agent's retry then settles it, and a further retry gets the same answer without a second
    settlement."""
    with agent_world(server, clock) as world:
        broker = world.broker
        request, envelope, ticket = world.running(output_mb=1)
        world.finish(ticket)
        receipt = world.agent.receipt(envelope, ticket, result=None, fuel=2 * 10**9)
        broker.writer.stop()
        with pytest.raises(grpc.RpcError) as unavailable:
            world.agent.report(receipt)
        assert unavailable.value.code() is CODE.UNAVAILABLE
        untouched = world.stored(request.id)
        assert untouched.state is S.RUNNING
        assert untouched.receipt_digest is None
        assert untouched.reservation_open
        assert broker.requests.store.receipt(request.id) is None
        broker.writer.start()
        first = world.agent.report(receipt)
        settled = world.stored(request.id)
        assert settled.state is S.COMPLETED
        assert not settled.reservation_open
        assert settled.receipt_digest == hashlib.sha256(receipt).digest()
        assert first.receipt_digest == settled.receipt_digest
        settles = _settle_transfers(broker, request.id)
        assert settles
        assert all(user_data == settled.receipt_digest for _, user_data, _ in settles.values())
        size = broker.store.head().size
        again = world.agent.report(receipt)
        assert again.receipt_digest == settled.receipt_digest
        assert again.entry_index == first.entry_index > 0
        assert broker.store.head().size == size
        assert _settle_transfers(broker, request.id) == settles
        check_books(broker, {"acme": MINTED})
