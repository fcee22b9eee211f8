"""End to end, on SQLite and PostgreSQL: a real broker server on loopback, `orbitq agent init`
and `orbitq agent run` as real subprocesses, a WAT-compiled module pushed, a request with an
input submitted; the agent pulls the ticket, runs the module, downlinks the result and reports
its receipt; the request completes through that receipt, whose SHA-256 is the settling
transfers' user_data, and the result fetched is the one the receipt names."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orbitq.ledger.note import key_id
from orbitq.ledger.receipts import RunOutcome, open_receipt, receipt_digest
from orbitq.v1 import constellation_pb2, quota_pb2, quota_pb2_grpc, request_pb2
from tests.agent import wat
from tests.agent.live import AgentProcess, Live, agent_init, live_world

INPUT = bytes(range(256)) * 64


@pytest.fixture
def live(tmp_path: Path, db_url: str) -> Iterator[Live]:
    with live_world(tmp_path, db_url) as world:
        yield world


def _settle_user_data(live: Live, request_id: str) -> list[bytes]:
    stub = quota_pb2_grpc.QuotaServiceStub(live.channel)
    listed = stub.ListTransfers(
        quota_pb2.ListTransfersRequest(tenant="acme", code=quota_pb2.TRANSFER_CODE_SETTLE),
        metadata=live.metadata,
        timeout=30,
    )
    return [bytes(t.user_data) for t in listed.transfers]


def _fetch(live: Live, digest: str) -> bytes:
    got = live.requests().GetBlob(
        request_pb2.GetBlobRequest(digest=digest), metadata=live.metadata, timeout=30
    )
    assert got.total_bytes == len(got.data)
    return bytes(got.data)


def _evidence(live: Live, request_id: str) -> request_pb2.GetEvidenceResponse:
    return live.requests().GetEvidence(
        request_pb2.GetEvidenceRequest(id=request_id), metadata=live.metadata, timeout=30
    )


def _check_completed(live: Live, request_id: str, expected_result: bytes) -> bytes:
    request = live.wait_terminal(request_id)
    assert request.state == request_pb2.REQUEST_STATE_COMPLETED, request
    evidence = _evidence(live, request_id)
    receipt_bytes = bytes(evidence.receipt)
    receipt = open_receipt(
        receipt_bytes,
        bytes(evidence.node_public_key),
        key_id(live.node, bytes(evidence.node_public_key)),
    )
    assert receipt.outcome == RunOutcome.OK
    assert receipt.ticket_sha256 == hashlib.sha256(bytes(evidence.ticket)).digest()
    digest = receipt_digest(receipt_bytes)
    assert bytes(request.receipt_digest) == digest
    settled = _settle_user_data(live, request_id)
    assert settled, "no settling transfer"
    assert set(settled) == {digest}  # every settlement is backed by this receipt
    assert receipt.result_sha256 == hashlib.sha256(expected_result).digest()
    assert request.result == f"sha256:{receipt.result_sha256.hex()}"
    assert _fetch(live, request.result) == expected_result
    return digest


def test_a_request_runs_on_a_real_agent_and_settles_by_its_receipt(
    live: Live, tmp_path: Path
) -> None:
    data_dir = tmp_path / "agent"
    init = agent_init(live, data_dir, constellation_pb2.GROUND_LINK_ALWAYS)
    assert init.returncode == 0, init.stderr
    assert f"node {live.node} enrolled" in init.stdout
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for secret in ("node.key", "credential"):
        assert stat.S_IMODE((data_dir / secret).stat().st_mode) == 0o600
    workload, data = live.push(wat.wasm(wat.readsum()), INPUT)
    request_id = live.submit(workload, data)
    agent = AgentProcess(data_dir, live.approach())
    try:
        agent.wait_for(f"ticket {request_id} accepted")
        agent.wait_for(f"run {request_id} ended: ok")
        agent.wait_for(f"receipt {request_id} acknowledged")
        expected = _expected_readsum(INPUT)
        _check_completed(live, request_id, expected)
    finally:
        assert agent.stop() == 0, "\n".join(agent.log)
    assert agent.log[-1].endswith("agent stopped")
    audited = _cli(live, "request", "audit", request_id)
    assert audited.returncode == 0, audited.stderr
    assert audited.stdout.startswith(f"reproduced: request {request_id} on node {live.node}: ok")


def _cli(live: Live, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "orbitq.clients.cli.main",
            *args,
            "--target",
            live.target,
            "--api-key",
            live.operator_key,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _expected_readsum(data: bytes) -> bytes:
    value = 2166136261
    for byte in data:
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    return f"{value:08x}\n".encode()


def test_an_agent_killed_mid_run_runs_again_and_settles_once(live: Live, tmp_path: Path) -> None:
    data_dir = tmp_path / "agent"
    assert agent_init(live, data_dir, constellation_pb2.GROUND_LINK_ALWAYS).returncode == 0
    # about a second of compute: long enough to be killed in the middle of it
    workload, data = live.push(wat.wasm(wat.spin(400_000_000)), b"unused")
    request_id = live.submit(workload, data, run_seconds=10)
    first = AgentProcess(data_dir, live.approach())
    first.wait_for(f"run {request_id} started")
    assert first.stop(kill=True) == -9
    assert not any("ended" in line for line in first.log)
    second = AgentProcess(data_dir, live.approach())
    try:
        second.wait_for(f"run {request_id} was cut short by a stop: running it again")
        second.wait_for(f"receipt {request_id} acknowledged")
        request = live.wait_terminal(request_id)
        assert request.state == request_pb2.REQUEST_STATE_COMPLETED, request
        evidence = _evidence(live, request_id)
        digest = receipt_digest(bytes(evidence.receipt))
        settled = _settle_user_data(live, request_id)
        assert settled, "no settling transfer"
        assert set(settled) == {digest}
        assert len(settled) <= 3  # one settlement: at most one transfer per kind
        result = _fetch(live, request.result)
        assert hashlib.sha256(result).digest() == bytes.fromhex(request.result[7:])
    finally:
        assert second.stop() == 0, "\n".join(second.log)
    assert sum("signed" in line for line in second.log) == 1


def test_an_agent_on_contacts_talks_inside_its_pass(live: Live, tmp_path: Path) -> None:
    data_dir = tmp_path / "agent"
    assert agent_init(live, data_dir, constellation_pb2.GROUND_LINK_CONTACTS).returncode == 0
    workload, data = live.push(wat.wasm(wat.readsum()), INPUT)
    request_id = live.submit(workload, data)
    agent = AgentProcess(data_dir, live.approach())
    try:
        agent.wait_for(f"receipt {request_id} acknowledged")
        _check_completed(live, request_id, _expected_readsum(INPUT))
    finally:
        assert agent.stop() == 0, "\n".join(agent.log)
    # before the pass the broker refused it: FAILED_PRECONDITION naming the next contact
    assert any("outside its contact windows" in line for line in agent.log), agent.log
    with sqlite3.connect(data_dir / "agent.db") as db:
        (contacts,) = db.execute("SELECT count(*) FROM contacts").fetchone()
    assert contacts >= 1  # the plan the broker gave at the pass
