"""A live world for the agent's end-to-end tests: a real broker and gRPC server on loopback, on
a clock both it and the `orbitq agent run` subprocess read (a shifted clock with one anchor),
a few real Starlink satellites, a tenant with tokens, and a node whose contact starts soon.

The clock starts at the TLE snapshot's epoch; once the contact plan is known it jumps forward
(never back) to just before a pass of some satellite, so a request placed on that satellite
gets its uplink, its run and its downlink within that one pass, in real time.
"""

from __future__ import annotations

import hashlib
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from orbitq.services.broker import Broker, init_data_dir
from orbitq.services.config import load_config
from orbitq.services.server import RunningServer, build_server
from orbitq.v1 import constellation_pb2, constellation_pb2_grpc, request_pb2, request_pb2_grpc
from tests.conftest import EPOCH
from tests.requests.sky import add_tenant, build_world

# How long a pass must last for a request's uplink, run and downlink to fit in it.
PASS_SECONDS_MIN = 240
# The clock first jumps to this long before the pass (enrolling and submitting happen then),
# and the tests move it to LEAD_SECONDS before the pass just before they start the agent.
SETUP_LEAD_SECONDS = 600
LEAD_SECONDS = 12
EVENT_TIMEOUT_SECONDS = 120.0


class JumpClock:
    """A shifted clock at real speed whose start can jump forward once the world is built."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._anchor = datetime.now(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._start + (datetime.now(UTC) - self._anchor)

    def jump(self, instant: datetime) -> None:
        with self._lock:
            real = datetime.now(UTC)
            assert instant >= self._start + (real - self._anchor), "a clock never goes back"
            self._start, self._anchor = instant, real

    def spec(self) -> str:
        """The same clock for `orbitq agent run --clock`."""
        with self._lock:
            return f"shifted:{_iso(self._start)}x1@{_iso(self._anchor)}"


def _iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Live:
    broker: Broker
    running: RunningServer
    target: str
    operator_key: str
    clock: JumpClock
    node: str
    pass_start: datetime
    pass_end: datetime
    channel: grpc.Channel
    tmp: Path

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.operator_key}"),)

    def enrollment_token(self, ground_link: int) -> str:
        stub = constellation_pb2_grpc.ConstellationServiceStub(self.channel)
        made = stub.CreateEnrollmentToken(
            constellation_pb2.CreateEnrollmentTokenRequest(
                node=self.node,
                ground_link=ground_link,  # type: ignore[arg-type]
            ),
            metadata=self.metadata,
            timeout=30,
        )
        return str(made.token)

    def approach(self, lead_seconds: float = LEAD_SECONDS) -> str:
        """Move the clock to `lead_seconds` before the pass; the clock spec for the agent."""
        target = self.pass_start - timedelta(seconds=lead_seconds)
        if self.clock.now() < target:
            self.clock.jump(target)
        return self.clock.spec()

    def requests(self) -> request_pb2_grpc.RequestServiceStub:
        return request_pb2_grpc.RequestServiceStub(self.channel)

    def push(self, module: bytes, data: bytes) -> tuple[str, str]:
        stub = self.requests()
        pushed = stub.PushWorkload(
            request_pb2.PushWorkloadRequest(module=module, tenant="acme"),
            metadata=self.metadata,
            timeout=30,
        )
        assert pushed.digest == f"sha256:{hashlib.sha256(module).hexdigest()}"
        stored = stub.PushInput(
            request_pb2.PushInputRequest(data=data, tenant="acme"),
            metadata=self.metadata,
            timeout=30,
        )
        return str(pushed.digest), str(stored.digest)

    def submit(self, workload: str, data: str, *, run_seconds: int = 5, key: str = "e2e-1") -> str:
        spec = request_pb2.RequestSpec(
            name="e2e",
            workload=workload,
            input=data,
            cpu_millicores=1000,
            run_seconds=run_seconds,
            storage_mb=10,
            input_mb=1,
            output_mb=1,
            node_ids=[self.node],
            not_before=_stamp(self.pass_start),  # not an earlier, shorter pass
            deadline=_stamp(self.pass_end),
        )
        submitted = self.requests().Submit(
            request_pb2.SubmitRequest(spec=spec, idempotency_key=key, tenant="acme"),
            metadata=self.metadata,
            timeout=30,
        )
        return str(submitted.request.id)

    def wait_terminal(self, request_id: str) -> request_pb2.ServiceRequest:
        """The request once it reaches a terminal state (WatchRequest, resumed until then)."""
        terminal = {
            request_pb2.REQUEST_STATE_COMPLETED,
            request_pb2.REQUEST_STATE_FAILED,
            request_pb2.REQUEST_STATE_CANCELLED,
            request_pb2.REQUEST_STATE_EXPIRED,
            request_pb2.REQUEST_STATE_UNSCHEDULABLE,
        }
        deadline = datetime.now(UTC) + timedelta(seconds=EVENT_TIMEOUT_SECONDS)
        after = 0
        while datetime.now(UTC) < deadline:
            stream = self.requests().WatchRequest(
                request_pb2.WatchRequestRequest(id=request_id, after_sequence=after),
                metadata=self.metadata,
                timeout=EVENT_TIMEOUT_SECONDS,
            )
            for event in stream:
                after = event.transition.sequence
                if event.request.state in terminal:
                    return event.request
        raise AssertionError(f"request {request_id} did not end within {EVENT_TIMEOUT_SECONDS} s")


def _stamp(instant: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(instant)
    return stamp


@contextmanager
def live_world(tmp_path: Path, db_url: str, listen: str = "127.0.0.1:0") -> Iterator[Live]:
    clock = JumpClock(EPOCH)
    data_dir = tmp_path / "broker"
    made = init_data_dir(data_dir, origin="orbitq.test/ledger", db_url=db_url, clock=clock)
    config = replace(
        load_config(data_dir, db_url=db_url),
        schedule_interval_seconds=0.5,
        checkpoint_interval_seconds=1.0,
    )
    broker = Broker(config, clock)
    broker.start()
    build_world(broker, satellites=6, hours=6)
    add_tenant(broker, "acme")
    node, aos, los = _soon_pass(broker)
    clock.jump(aos - timedelta(seconds=SETUP_LEAD_SECONDS))
    running = build_server(broker, listen)
    target = f"127.0.0.1:{running.port}"
    try:
        with grpc.insecure_channel(target) as channel:
            yield Live(
                broker,
                running,
                target,
                made.operator_key.token,
                clock,
                node,
                aos,
                los,
                channel,
                tmp_path,
            )
    finally:
        running.stop(grace=1.0)
        broker.stop()


def _soon_pass(broker: Broker) -> tuple[str, datetime, datetime]:
    """The first pass of any node after the setup lead, long enough for one job."""
    earliest = EPOCH + timedelta(seconds=SETUP_LEAD_SECONDS + 60)
    for contact in broker.constellation.contacts_between(earliest, EPOCH + timedelta(hours=6)):
        aos = datetime.fromtimestamp(contact.aos_ns / 1e9, tz=UTC)
        los = datetime.fromtimestamp(contact.los_ns / 1e9, tz=UTC)
        if aos >= earliest and (los - aos).total_seconds() >= PASS_SECONDS_MIN:
            return contact.node, aos, los
    raise AssertionError("no pass long enough in the first hours of the snapshot")


class AgentProcess:
    """`orbitq agent run` as a real subprocess; its log lines arrive on a queue."""

    def __init__(self, data_dir: Path, clock_spec: str, *extra: str) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orbitq.clients.cli.main",
                "agent",
                "run",
                "--data-dir",
                str(data_dir),
                "--clock",
                clock_spec,
                "--poll-seconds",
                "1",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.log.append(line.rstrip())
            self.lines.put(line.rstrip())

    def wait_for(self, text: str) -> str:
        """The first new log line containing `text` (fails after EVENT_TIMEOUT_SECONDS)."""
        deadline = datetime.now(UTC) + timedelta(seconds=EVENT_TIMEOUT_SECONDS)
        while datetime.now(UTC) < deadline:
            try:
                line = self.lines.get(timeout=1.0)
            except queue.Empty:
                assert self.process.poll() is None, "\n".join(self.log)
                continue
            if text in line:
                return line
        raise AssertionError(f"no {text!r} in the agent's log:\n" + "\n".join(self.log))

    def stop(self, *, kill: bool = False) -> int:
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        code = self.process.wait(timeout=EVENT_TIMEOUT_SECONDS)
        self._reader.join(timeout=EVENT_TIMEOUT_SECONDS)
        return code


def agent_init(live: Live, data_dir: Path, ground_link: int) -> subprocess.CompletedProcess[str]:
    token = live.enrollment_token(ground_link)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "orbitq.clients.cli.main",
            "agent",
            "init",
            "--node",
            live.node,
            "--token",
            token,
            "--target",
            live.target,
            "--data-dir",
            str(data_dir),
            "--calibration-rounds",
            "1",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=EVENT_TIMEOUT_SECONDS,
    )
