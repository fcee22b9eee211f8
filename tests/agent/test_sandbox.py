"""The sandbox: every outcome, the import policy, escapes, the output cap, determinism, and a
golden run that fails loudly when a wasmtime upgrade changes how fuel is counted."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from orbitq.clients.agent.bundle import OutputRefusedError, pack
from orbitq.clients.agent.errors import ModuleRefusedError
from orbitq.clients.agent.isolate import run_isolated
from orbitq.clients.agent.sandbox import (
    INPUT_NAME,
    Outcome,
    Sandbox,
    check_module,
    make_engine,
    runtime,
)
from tests.agent import wat
from tests.agent.conftest import MakeJob

GOLDEN_INPUT = bytes((i * 7) % 251 for i in range(3 * 65536 + 17))
# readsum over GOLDEN_INPUT under wasmtime 51: change these only with a deliberate upgrade of
# wasmtime, which changes what every enrolled node's fuel means (docs/agent.md).
GOLDEN_RUNTIME = "wasmtime 51.0.0"
GOLDEN_FUEL = 3_343_037
GOLDEN_RESULT_SHA256 = "ef278e6c7ac792e68949ae9d0107c1e6c5126ed1cf1f6d776450d640fe38e744"
# clock_time_get = 2025-12-06T00:00:00Z in ns (little-endian), then 16 bytes of random_get.
GOLDEN_WORLD = "0000f42b3b777e185bb028c4706cd5b78a8a626329428215"


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox()


def test_golden_fuel_and_digest(sandbox: Sandbox, make_job: MakeJob) -> None:
    assert runtime() == GOLDEN_RUNTIME, "a new wasmtime: re-check fuel accounting, then update"
    job = make_job(wat.readsum(), input_bytes=GOLDEN_INPUT)
    execution = sandbox.run(job)
    assert execution.outcome == Outcome.OK
    assert execution.fuel == GOLDEN_FUEL
    packed = pack(job.run_dir / "out", job.run_dir / "result")
    assert packed.sha256 is not None
    assert packed.sha256.hex() == GOLDEN_RESULT_SHA256
    assert (job.run_dir / "stdout").read_bytes() == b"e90c547a\n"


def test_clock_and_random_are_fixed_by_the_job(sandbox: Sandbox, make_job: MakeJob) -> None:
    job = make_job(wat.clock_and_random())
    assert sandbox.run(job).outcome == Outcome.OK
    assert (job.run_dir / "out" / "world.bin").read_bytes().hex() == GOLDEN_WORLD


def test_the_input_is_a_copy_with_a_fixed_mtime(sandbox: Sandbox, make_job: MakeJob) -> None:
    job = make_job(wat.readsum(), input_bytes=b"abc")
    sandbox.run(job)
    staged = job.run_dir / "in" / INPUT_NAME
    assert staged.read_bytes() == b"abc"
    assert job.input_path is not None
    assert staged.stat().st_ino != job.input_path.stat().st_ino
    assert int(staged.stat().st_mtime) == 1_764_979_200


@pytest.mark.parametrize(
    ("text", "outcome", "exit_code", "detail"),
    [
        (wat.hello(), Outcome.OK, 0, ""),
        (wat.exit_with(0), Outcome.OK, 0, ""),
        (wat.exit_with(3), Outcome.EXIT, 3, ""),
        (wat.trap_unreachable(), Outcome.TRAP, 0, "wasm trap: wasm `unreachable`"),
        (wat.readsum(), Outcome.EXIT, 2, ""),  # no input: its own exit status
    ],
)
def test_outcomes(
    sandbox: Sandbox,
    make_job: MakeJob,
    text: str,
    outcome: Outcome,
    exit_code: int,
    detail: str,
) -> None:
    execution = sandbox.run(make_job(text))
    assert execution.outcome == outcome
    assert execution.exit_code == exit_code
    assert execution.detail.startswith(detail)
    assert execution.fuel > 0


def test_out_of_fuel_stops_at_exactly_fuel_max(sandbox: Sandbox, make_job: MakeJob) -> None:
    execution = sandbox.run(make_job(wat.spin(10**6), fuel_max=5_000))
    assert execution.outcome == Outcome.OUT_OF_FUEL
    assert execution.fuel == 5_000


def test_wall_time_interrupts_a_loop(sandbox: Sandbox, make_job: MakeJob) -> None:
    execution = sandbox.run(make_job(wat.forever(), fuel_max=10**15, run_seconds=0.2))
    assert execution.outcome == Outcome.WALL_TIME
    assert 0.2 <= execution.wall_seconds < 5
    assert execution.fuel == 10**15  # stopped from outside: charged its whole fuel


def test_memory_grow_past_the_cap_fails_in_the_guest(sandbox: Sandbox, make_job: MakeJob) -> None:
    execution = sandbox.run(make_job(wat.memhog(), memory_bytes_max=4 << 20))
    assert (execution.outcome, execution.exit_code) == (Outcome.EXIT, 9)


def test_a_memory_minimum_over_the_cap_traps(sandbox: Sandbox, make_job: MakeJob) -> None:
    execution = sandbox.run(make_job(wat.big_memory(100), memory_bytes_max=1 << 20))
    assert execution.outcome == Outcome.TRAP
    assert "exceeds memory limits" in execution.detail


# --- the import policy and module checks -------------------------------------------------


def test_a_foreign_import_is_refused() -> None:
    with pytest.raises(ModuleRefusedError, match=r"import env\.host_time is outside wasi"):
        check_module(make_engine(), wat.wasm(wat.foreign_import()))


def test_wat_text_is_refused_as_not_a_binary() -> None:
    with pytest.raises(ModuleRefusedError, match="not a WebAssembly binary"):
        check_module(make_engine(), wat.hello().encode())


def test_an_invalid_binary_is_refused() -> None:
    truncated = wat.wasm(wat.hello())[:40]
    with pytest.raises(ModuleRefusedError, match="invalid WebAssembly"):
        check_module(make_engine(), truncated)


def test_a_module_without_start_is_refused() -> None:
    with pytest.raises(ModuleRefusedError, match="must export _start and memory"):
        check_module(make_engine(), wat.wasm(wat.no_start()))


def test_a_refused_module_in_the_child_is_reported(make_job: MakeJob, tmp_path: Path) -> None:
    with pytest.raises(ModuleRefusedError, match="outside wasi_snapshot_preview1"):
        run_isolated(make_job(wat.foreign_import()), tmp_path / "modules")


# --- escapes ------------------------------------------------------------------------------


def test_no_path_leaves_the_preopens_and_in_is_read_only(
    sandbox: Sandbox, make_job: MakeJob
) -> None:
    job = make_job(wat.escape_attempt(), input_bytes=b"x")
    assert sandbox.run(job).outcome == Outcome.OK
    # 0x3f = 63 = EPERM (WASI) for both the escape and the write into /in
    assert (job.run_dir / "stdout").read_bytes() == b"0000003f 0000003f\n"
    assert sorted(p.name for p in (job.run_dir / "in").iterdir()) == [INPUT_NAME]


@pytest.mark.parametrize("target", ["hello.txt", "../../../../etc/passwd"])
def test_a_symlink_in_out_is_never_packed(sandbox: Sandbox, make_job: MakeJob, target: str) -> None:
    job = make_job(wat.symlink_out(target))
    assert sandbox.run(job).outcome == Outcome.OK
    with pytest.raises(OutputRefusedError, match="is a symlink"):
        pack(job.run_dir / "out", job.run_dir / "result")
    assert not (job.run_dir / "result").exists()


# --- the output cap -----------------------------------------------------------------------


def test_one_big_file_stops_at_the_cap_in_the_child(make_job: MakeJob, tmp_path: Path) -> None:
    cap = 2 << 20
    job = make_job(wat.big_writer(), output_bytes_max=cap)
    execution = run_isolated(job, tmp_path / "modules")
    assert execution.outcome == Outcome.OUTPUT_TOO_LARGE
    assert execution.exit_code == 5  # the guest's write failed with EFBIG
    # RLIMIT_FSIZE = cap + 1: the file stops exactly there, nothing more reached the disk
    assert (job.run_dir / "out" / "big.bin").stat().st_size == cap + 1


def test_stdout_counts_in_the_cap(make_job: MakeJob, tmp_path: Path) -> None:
    cap = 1 << 20
    job = make_job(wat.big_writer(to_stdout=True), output_bytes_max=cap)
    execution = run_isolated(job, tmp_path / "modules")
    assert execution.outcome == Outcome.OUTPUT_TOO_LARGE
    assert (job.run_dir / "stdout").stat().st_size == cap + 1


def test_many_files_are_over_the_entry_limit(sandbox: Sandbox, make_job: MakeJob) -> None:
    execution = sandbox.run(make_job(wat.many_files(2_000)))
    assert execution.outcome == Outcome.OUTPUT_TOO_LARGE
    assert "entries" in execution.detail


# --- the result blob ----------------------------------------------------------------------


def test_one_file_is_the_result_itself(sandbox: Sandbox, make_job: MakeJob) -> None:
    job = make_job(wat.hello())
    sandbox.run(job)
    packed = pack(job.run_dir / "out", job.run_dir / "result")
    assert packed.path is not None
    assert packed.path.read_bytes() == b"hello\n"
    assert packed.sha256 == hashlib.sha256(b"hello\n").digest()


def test_an_empty_out_is_no_result(sandbox: Sandbox, make_job: MakeJob) -> None:
    job = make_job(wat.exit_with(0))
    sandbox.run(job)
    assert pack(job.run_dir / "out", job.run_dir / "result").sha256 is None


def test_several_files_are_a_deterministic_ustar(
    sandbox: Sandbox, make_job: MakeJob, tmp_path: Path
) -> None:
    first, second = make_job(wat.two_files()), make_job(wat.two_files())
    sandbox.run(first)
    sandbox.run(second)
    a = pack(first.run_dir / "out", tmp_path / "a.tar")
    b = pack(second.run_dir / "out", tmp_path / "b.tar")
    assert a.sha256 == b.sha256
    assert a.path is not None
    with tarfile.open(fileobj=io.BytesIO(a.path.read_bytes())) as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == ["a.txt", "sub", "sub/b.txt"]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
        assert [m.mode for m in members] == [0o644, 0o755, 0o644]
        extracted = archive.extractfile("sub/b.txt")
        assert extracted is not None
        assert extracted.read() == b"B"


# --- determinism and the module cache -----------------------------------------------------


def test_two_processes_give_the_same_fuel_and_result(make_job: MakeJob, tmp_path: Path) -> None:
    results = []
    for _ in range(2):
        job = make_job(wat.readsum(), input_bytes=GOLDEN_INPUT)
        execution = run_isolated(job, None)
        packed = pack(job.run_dir / "out", job.run_dir / "result")
        results.append((execution.outcome, execution.fuel, packed.sha256))
    assert (
        results[0] == results[1] == (Outcome.OK, GOLDEN_FUEL, bytes.fromhex(GOLDEN_RESULT_SHA256))
    )


def test_compiled_modules_are_cached_and_a_damaged_artifact_is_recompiled(
    make_job: MakeJob, tmp_path: Path
) -> None:
    cache = tmp_path / "modules"
    job = make_job(wat.spin(1000))
    first = Sandbox(cache).run(job)
    (artifact,) = cache.glob("*.cwasm")
    assert artifact.name.startswith(job.wasm_sha256.hex())
    assert Sandbox(cache).run(job).fuel == first.fuel  # loaded from the artifact
    artifact.write_bytes(b"not an artifact")
    assert Sandbox(cache).run(job).fuel == first.fuel  # recompiled
    assert artifact.read_bytes() != b"not an artifact"


def test_the_child_reports_as_json(make_job: MakeJob) -> None:
    """The child's protocol: a job as JSON on stdin, one JSON line on stdout."""
    from orbitq.clients.agent.isolate import _job_json

    job = make_job(wat.hello())
    payload = _job_json(job, None)
    payload["parent"] = 0  # not our pid: the child must refuse to run as an orphan
    child = subprocess.run(
        [sys.executable, "-m", "orbitq.clients.agent.isolate"],
        input=json.dumps(payload).encode(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert child.returncode == 1
    assert child.stdout == b""
    assert not (job.run_dir / "out").exists()
