"""A sandbox run in a child process: how `orbitq agent run` and `orbitq request audit` run
workloads.

Owns: starting one child per run (`python -m orbitq.clients.agent.isolate`, the job as JSON on
its stdin, the Execution as JSON on its stdout), the child's own limits (RLIMIT_FSIZE = the
output cap + 1, with SIGXFSZ ignored, so a write past the cap fails with EFBIG instead of
filling the disk; it dies with its parent), and the parent's backstop timeout.

Why a child: WASI has no quota, and a guest writes faster than any watcher polls, so the hard
per-file limit must be a resource limit, which applies to a whole process; a child also gives
one engine (and one epoch) per run and a clean kill -9. The simulator uses Sandbox.run in its
own process instead (orbitq.clients.agent.sandbox), where fuel alone bounds the cheap modules.

Does not own: the run itself (orbitq.clients.agent.sandbox).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from orbitq.clients.agent.errors import ModuleRefusedError, SandboxError
from orbitq.clients.agent.sandbox import Execution, Job, Limits, Outcome, Sandbox

CHILD_MODULE = "orbitq.clients.agent.isolate"
# Start-up and compiling on top of the run's own wall time, before the parent gives up.
CHILD_SLACK_SECONDS = 60.0
JOB_BYTES_MAX = 64 * 1024
REPORT_BYTES_MAX = 64 * 1024
_PR_SET_PDEATHSIG = 1


def run_isolated(job: Job, cache_dir: Path | None) -> Execution:
    """Run `job` in a child process; ModuleRefusedError or SandboxError when it could not run."""
    payload = json.dumps(_job_json(job, cache_dir))
    child = subprocess.Popen(  # noqa: S603  (our own interpreter and module)
        [sys.executable, "-m", CHILD_MODULE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        close_fds=True,
        # Its own session: a Ctrl-C at the agent's terminal lets the run finish with the step
        # instead of killing it; the child still dies with the agent (PR_SET_PDEATHSIG).
        start_new_session=True,
    )
    try:
        out, err = child.communicate(
            payload.encode(), timeout=job.limits.run_seconds + CHILD_SLACK_SECONDS
        )
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise SandboxError(
            f"the sandbox did not stop within {job.limits.run_seconds:g} s + "
            f"{CHILD_SLACK_SECONDS:g} s"
        ) from None
    return _report(child.returncode, out[:REPORT_BYTES_MAX], err)


def _report(returncode: int, out: bytes, err: bytes) -> Execution:
    try:
        report = json.loads(out)
    except ValueError:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise SandboxError(
            f"the sandbox process ended with status {returncode}: {last[0][:300]}"
        ) from None
    if "refused" in report:
        raise ModuleRefusedError(str(report["refused"]))
    return Execution(
        outcome=Outcome(report["outcome"]),
        exit_code=int(report["exit_code"]),
        fuel=int(report["fuel"]),
        output_bytes=int(report["output_bytes"]),
        wall_seconds=float(report["wall_seconds"]),
        detail=str(report["detail"]),
    )


def _job_json(job: Job, cache_dir: Path | None) -> dict[str, Any]:
    return {
        "wasm_path": str(job.wasm_path),
        "wasm_sha256": job.wasm_sha256.hex(),
        "input_path": None if job.input_path is None else str(job.input_path),
        "run_dir": str(job.run_dir),
        "limits": asdict(job.limits),
        "clock_ns": job.clock_ns,
        "seed": job.seed.hex(),
        "cache_dir": None if cache_dir is None else str(cache_dir),
        "parent": os.getpid(),
    }


def _job_of(data: dict[str, Any]) -> tuple[Job, Path | None]:
    job = Job(
        wasm_path=Path(data["wasm_path"]),
        wasm_sha256=bytes.fromhex(data["wasm_sha256"]),
        input_path=None if data["input_path"] is None else Path(data["input_path"]),
        run_dir=Path(data["run_dir"]),
        limits=Limits(**data["limits"]),
        clock_ns=int(data["clock_ns"]),
        seed=bytes.fromhex(data["seed"]),
    )
    cache_dir = None if data["cache_dir"] is None else Path(data["cache_dir"])
    return job, cache_dir


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when the agent dies (kill -9 included)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        sys.exit(1)


def _limit_files(output_bytes_max: int) -> None:
    # cap + 1: a file that reached the limit shows as "used > cap" in the recount.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG to the guest, not a dead process
    limit = output_bytes_max + 1
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def main() -> int:
    data = json.loads(sys.stdin.read(JOB_BYTES_MAX))
    _die_with_parent(int(data["parent"]))
    job, cache_dir = _job_of(data)
    try:
        execution = Sandbox(cache_dir).run(
            job,
            before_start=lambda: _limit_files(job.limits.output_bytes_max),
            stop_when_orphaned=True,
        )
    except ModuleRefusedError as error:
        print(json.dumps({"refused": str(error)}))
        return 0
    report = asdict(execution)
    report["outcome"] = execution.outcome.value
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
