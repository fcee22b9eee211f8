"""Real `orbitq agent` processes for the demo: one per chosen satellite, enrolled and stopped.

Owns: `orbitq agent init` with a one-time enrollment token (ground link "always"), `orbitq agent
run` on the broker's clock as a subprocess whose log lines are collected by a reader thread, and
SIGTERM on the way out. Does not own the agent (orbitq.clients.agent) or what the story says.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from orbitq.clients import BrokerClient
from orbitq.clients.cli.registry import CommandError

INIT_SECONDS_MAX = 60.0
STOP_SECONDS_MAX = 30.0
# An agent logs a few lines per ticket; a runaway log must not grow the demo's memory forever.
LOG_LINES_MAX = 10_000


def _orbitq(*args: str) -> list[str]:
    return [sys.executable, "-m", "orbitq.clients.cli.main", *args]


@dataclass
class RunningAgent:
    node: str
    name: str
    enrolled: str  # what `orbitq agent init` printed
    process: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            if len(self.log) < LOG_LINES_MAX:
                # drop the agent's own timestamp: the story reads the events, not the instants
                self.log.append(line.rstrip().split(" ", 1)[-1])

    def lines(self, request_id: str) -> list[str]:
        return [line for line in self.log if request_id in line]


def enroll(operator: BrokerClient, target: str, node: str, data_dir: Path) -> str:
    """`orbitq agent init` for `node` with a fresh token; what it printed."""
    token = operator.create_enrollment_token(node, ground_link="always").token
    # Our own interpreter and module, ids from our broker: no untrusted input on the line.
    done = subprocess.run(  # noqa: S603
        _orbitq(
            "agent",
            "init",
            "--node",
            node,
            "--token",
            token,
            "--target",
            target,
            "--data-dir",
            str(data_dir),
            "--calibration-rounds",
            "1",
        ),
        capture_output=True,
        text=True,
        check=False,
        timeout=INIT_SECONDS_MAX,
    )
    if done.returncode != 0:
        raise CommandError(f"orbitq agent init for {node} failed: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def _agent(
    data_dir: Path, node: str, name: str, enrolled: str, clock: str
) -> Iterator[RunningAgent]:
    process = subprocess.Popen(  # noqa: S603
        _orbitq(
            "agent",
            "run",
            "--data-dir",
            str(data_dir),
            "--clock",
            clock,
            "--ground-link",
            "always",
            "--poll-seconds",
            "1",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    agent = RunningAgent(node, name, enrolled, process)
    assert process.stdout is not None
    reader = threading.Thread(target=agent._read, args=(process.stdout,), daemon=True)
    reader.start()
    try:
        yield agent
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            agent.exit_code = process.wait(STOP_SECONDS_MAX)
        except subprocess.TimeoutExpired:
            process.kill()
            agent.exit_code = process.wait()
        reader.join(STOP_SECONDS_MAX)


@contextmanager
def running_agents(
    operator: BrokerClient,
    target: str,
    nodes: dict[str, str],
    directory: Path,
    clock: str,
) -> Iterator[list[RunningAgent]]:
    """An enrolled, running agent for each of `nodes` (id → name), stopped on the way out."""
    with ExitStack() as stack:
        agents = []
        for index, (node, name) in enumerate(nodes.items()):
            data_dir = directory / f"agent-{index}"
            enrolled = enroll(operator, target, node, data_dir)
            agents.append(stack.enter_context(_agent(data_dir, node, name, enrolled, clock)))
        yield agents
