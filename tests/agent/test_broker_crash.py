"""kill -9 of the broker mid-settlement, on SQLite and PostgreSQL: a real `orbitq serve` process
kills itself (SIGKILL, the receipt.settled crash point (ORBITQ_CRASH_AT) of
orbitq.services.agents.receipts) right after it stored and settled the second of two receipts
(one commit) and before the agent heard so, while a real `orbitq agent run` process keeps its
outbox. The broker restarts on the same data and port; the agent redelivers. No receipt is
lost, none settles twice (ReportReceipt is idempotent per request: one settling transfer per
kind, all carrying the receipt's SHA-256), and `orbitq ledger verify` passes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import grpc

from orbitq.ledger.receipts import receipt_digest
from orbitq.services.crashpoint import ENV as CRASH_ENV
from orbitq.v1 import constellation_pb2, quota_pb2, quota_pb2_grpc, request_pb2, request_pb2_grpc
from tests.agent import wat
from tests.agent.live import EVENT_TIMEOUT_SECONDS, AgentProcess, agent_init, live_world

# Two: the first is acknowledged before the crash, the second is settled but not acknowledged
# when the broker dies. Both tickets were pulled before (the second ran), so nothing after the
# restart waits on a ticket's uplink window, which a broker down across it would miss (and
# re-place).
REQUESTS = 2
CRASH_AT = 2
INPUT = bytes(range(256)) * 16


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _orbitq(*args: str) -> list[str]:
    return [sys.executable, "-m", "orbitq.clients.cli.main", *args]


class Serve:
    """`orbitq serve` as a real subprocess on a fixed address (the agent has it pinned)."""

    def __init__(
        self, data_dir: Path, db_url: str, listen: str, clock: str, log: IO[str], *, crash: bool
    ) -> None:
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        if crash:
            env[CRASH_ENV] = f"receipt.settled:{CRASH_AT}"
        command = _orbitq("serve", "--data-dir", str(data_dir), "--db", db_url, "--listen", listen)
        command.extend(["--clock", clock, "--log-level", "WARNING"])
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert "listening on" in line, Path(log.name).read_text()


def _poll(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) until `condition()` holds; transient refusals count as not yet."""
    deadline = datetime.now(UTC) + timedelta(seconds=EVENT_TIMEOUT_SECONDS)
    while datetime.now(UTC) < deadline:
        try:
            if condition():
                return
        except grpc.RpcError as error:
            if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
        time.sleep(0.2)  # a poll interval, not a synchronisation: the condition decides
    raise AssertionError(f"not within {EVENT_TIMEOUT_SECONDS} s: {what}")


def test_a_broker_killed_mid_settlement_loses_no_receipt_and_settles_none_twice(
    tmp_path: Path, db_url: str
) -> None:
    listen = f"127.0.0.1:{_free_port()}"
    agent_dir = tmp_path / "agent"
    # The world is built, the agent enrolled and the work placed by an in-process broker; it
    # then stops, and the broker under test is a separate `orbitq serve` process on its data.
    with live_world(tmp_path, db_url, listen) as live:
        assert agent_init(live, agent_dir, constellation_pb2.GROUND_LINK_ALWAYS).returncode == 0
        workload, data = live.push(wat.wasm(wat.readsum()), INPUT)
        ids = [live.submit(workload, data, key=f"crash-{n}") for n in range(REQUESTS)]
        metadata = live.metadata
        stub = live.requests()

        def placed() -> bool:
            return all(
                stub.GetRequest(
                    request_pb2.GetRequestRequest(id=i), metadata=metadata, timeout=10
                ).request.state
                == request_pb2.REQUEST_STATE_PLACED
                for i in ids
            )

        _poll(placed, "the requests placed")
        clock = live.approach()
        data_dir = live.broker.config.data_dir
    with (tmp_path / "serve-first.log").open("w") as first_log:
        first = Serve(data_dir, db_url, listen, clock, first_log, crash=True)
        agent = AgentProcess(agent_dir, clock)
        try:
            assert first.process.wait(EVENT_TIMEOUT_SECONDS) == -signal.SIGKILL
        finally:
            if first.process.poll() is None:
                first.process.kill()
    with (tmp_path / "serve-second.log").open("w") as second_log:
        second = Serve(data_dir, db_url, listen, clock, second_log, crash=False)
        try:
            with grpc.insecure_channel(listen) as channel:
                requests = request_pb2_grpc.RequestServiceStub(channel)

                def shown(request_id: str) -> request_pb2.ServiceRequest:
                    return requests.GetRequest(
                        request_pb2.GetRequestRequest(id=request_id), metadata=metadata, timeout=10
                    ).request

                _poll(
                    lambda: all(shown(i).state == request_pb2.REQUEST_STATE_COMPLETED for i in ids),
                    "every request completed",
                )
                _poll(
                    lambda: all(f"receipt {i} acknowledged" in "\n".join(agent.log) for i in ids),
                    "every receipt acknowledged to the agent",
                )
                digests = {}
                for request_id in ids:
                    evidence = requests.GetEvidence(
                        request_pb2.GetEvidenceRequest(id=request_id), metadata=metadata, timeout=10
                    )
                    digest = receipt_digest(bytes(evidence.receipt))
                    assert bytes(shown(request_id).receipt_digest) == digest
                    digests[request_id] = digest
                transfers = (
                    quota_pb2_grpc.QuotaServiceStub(channel)
                    .ListTransfers(
                        quota_pb2.ListTransfersRequest(
                            tenant="acme", code=quota_pb2.TRANSFER_CODE_SETTLE, page_size=1000
                        ),
                        metadata=metadata,
                        timeout=10,
                    )
                    .transfers
                )
        finally:
            assert agent.stop() == 0, "\n".join(agent.log)
            second.process.send_signal(signal.SIGTERM)
            assert second.process.wait(EVENT_TIMEOUT_SECONDS) == 0
    # Every request settled by its own receipt, and once: one settling transfer per kind.
    settled = Counter((bytes(t.user_data), t.kind) for t in transfers)
    assert {user_data for user_data, _ in settled} == set(digests.values())
    assert set(settled.values()) == {1}, settled
    # The crash came between the settlement's commit and the answer: the redelivery after the
    # restart found it settled and settled nothing more (one transfer per kind, above).
    assert "crash point receipt.settled reached" in (tmp_path / "serve-first.log").read_text()
    log = "\n".join(agent.log)
    assert sum(f"receipt {i} signed" in log for i in ids) == REQUESTS
    assert "link down" in log, log  # the agent saw the broker go away and came back
    verify = subprocess.run(
        _orbitq("ledger", "verify", "--data-dir", str(data_dir), "--db", db_url),
        capture_output=True,
        text=True,
        check=False,
        timeout=EVENT_TIMEOUT_SECONDS,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
