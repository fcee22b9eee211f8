"""Fixtures of the agent's tests: jobs for the sandbox from WAT text."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from orbitq.clients.agent.sandbox import Job, Limits
from tests.agent import wat

# 2025-12-06T00:00:00Z: what clock_time_get answers in these tests.
CLOCK_NS = 1_764_979_200 * 1_000_000_000
SEED = bytes.fromhex("0123456789abcdef0123456789abcdef")

MakeJob = Callable[..., Job]


@pytest.fixture
def make_job(tmp_path: Path) -> MakeJob:
    """A job running the WAT `text`, with `input_bytes` as /in/input (None: no input)."""
    counter = iter(range(10_000))

    def make(
        text: str,
        *,
        input_bytes: bytes | None = None,
        fuel_max: int = 10**9,
        run_seconds: float = 10.0,
        output_bytes_max: int = 1 << 20,
        memory_bytes_max: int | None = None,
        run_dir: Path | None = None,
    ) -> Job:
        n = next(counter)
        binary = wat.wasm(text)
        wasm_path = tmp_path / f"module-{n}.wasm"
        wasm_path.write_bytes(binary)
        input_path = None
        if input_bytes is not None:
            input_path = tmp_path / f"input-{n}"
            input_path.write_bytes(input_bytes)
        limits = Limits(fuel_max, run_seconds, output_bytes_max)
        if memory_bytes_max is not None:
            limits = Limits(fuel_max, run_seconds, output_bytes_max, memory_bytes_max)
        return Job(
            wasm_path=wasm_path,
            wasm_sha256=hashlib.sha256(binary).digest(),
            input_path=input_path,
            run_dir=run_dir or tmp_path / f"run-{n}",
            limits=limits,
            clock_ns=CLOCK_NS,
            seed=SEED,
        )

    return make
