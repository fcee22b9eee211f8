"""The sandbox: one WASI preview 1 command run by wasmtime under fuel, memory, wall-time and
output limits, seeing nothing of the host but its input and an output directory.

Owns: the engine configuration (part of what a receipt's fuel means), the module checks (binary
magic, validation, the import policy), the compiled-module cache, running a module in this
process (`Sandbox.run`, used by the simulator; `orbitq agent run` wraps the same run in a child
process, orbitq.clients.agent.isolate), the deterministic shadows of the clock and the random
source, the watcher that stops a run at its wall-time or output limit, and the outcome of a run
exactly as docs/agent.md ("The sandbox") lists them.

Does not own: packing the output into one result blob (orbitq.clients.agent.bundle), receipts
(orbitq.clients.agent.agent), or the output cap's hard per-file limit (RLIMIT_FSIZE, set by the
child process in orbitq.clients.agent.isolate: this process cannot set it for itself without
limiting every file the agent writes).

A run's directory holds `in/input` (a copy of the input, mtime = the fixed clock), `out/` (the
guest's /out), `stdout` and `stderr`. The guest sees fd 3 = /in (read-only) and fd 4 = /out.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import shutil
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import wasmtime

from orbitq.clients.agent.errors import ModuleRefusedError, SandboxError

WASI_MODULE = "wasi_snapshot_preview1"
WASM_MAGIC = b"\x00asm\x01\x00\x00\x00"
MODULE_BYTES_MAX = 8 * 1024 * 1024
# The linear-memory cap of every run, on every node: part of the sandbox's contract, because a
# module whose memory.grow fails behaves differently, and an audit must reproduce the run.
MEMORY_BYTES_MAX = 256 * 1024 * 1024
# /out may hold at most this many entries (files and directories); stdout and stderr are two more.
OUTPUT_ENTRIES_MAX = 1024
WATCH_INTERVAL_SECONDS = 0.02
# The name the input has under /in.
INPUT_NAME = "input"
# Compiled modules kept in memory per Sandbox (the simulator runs one module many times).
MODULES_CACHED_MAX = 32
# WASI errnos the shadows return: a pointer outside the guest's memory; not supported.
_ERRNO_FAULT = 21
_ERRNO_NOTSUP = 58
_NANOS_PER_SECOND = 1_000_000_000


class Outcome(enum.Enum):
    """How a run ended (docs/agent.md, "Outcomes")."""

    OK = "ok"
    TRAP = "trap"
    OUT_OF_FUEL = "out_of_fuel"
    WALL_TIME = "wall_time"
    OUTPUT_TOO_LARGE = "output_too_large"
    EXIT = "exit"


@dataclass(frozen=True)
class Limits:
    """What one run may use."""

    #: wasm fuel (operators executed); the run traps at exactly this much.
    fuel_max: int
    #: Real seconds before the run is interrupted (the ticket's run_seconds).
    run_seconds: float
    #: Bytes of /out (regular files) plus stdout plus stderr.
    output_bytes_max: int
    #: Bytes of linear memory; memory.grow past it returns -1.
    memory_bytes_max: int = MEMORY_BYTES_MAX


@dataclass(frozen=True)
class Job:
    """One run: the module, its input, where it runs, its limits and its fixed world."""

    wasm_path: Path
    #: SHA-256 of the module's bytes: the compiled-module cache's key.
    wasm_sha256: bytes
    input_path: Path | None
    run_dir: Path
    limits: Limits
    #: What clock_time_get answers, in ns since the epoch (the ticket's start).
    clock_ns: int
    #: The seed of random_get's stream (the request id).
    seed: bytes


@dataclass(frozen=True)
class Execution:
    """What running the module gave, before its output is packed."""

    outcome: Outcome
    exit_code: int
    fuel: int
    output_bytes: int
    wall_seconds: float
    detail: str = ""


def runtime() -> str:
    """The runtime string a node enrolls and a receipt carries: fuel is counted per version."""
    return f"wasmtime {version('wasmtime')}"


# What the engine is configured with, in the compiled-module cache's key (a cached artifact
# is native code for exactly one configuration).
ENGINE_CONFIG = "fuel,epoch,opt=speed,nan-canonical,no-threads,relaxed-simd-deterministic"


def make_engine() -> wasmtime.Engine:
    """The one engine configuration receipts are counted under (ENGINE_CONFIG)."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.cranelift_opt_level = "speed"  # fuel is counted per wasm operator, at any level
    config.cranelift_nan_canonicalization = True  # NaN bits the same on every CPU
    config.wasm_threads = False
    config.wasm_relaxed_simd_deterministic = True
    config.parallel_compilation = False  # compile on the calling thread; a node has few cores
    return wasmtime.Engine(config)


def check_module(engine: wasmtime.Engine, wasm: bytes) -> wasmtime.Module:
    """The compiled module, or ModuleRefusedError saying why it is not a WASI command we run."""
    if len(wasm) > MODULE_BYTES_MAX:
        raise ModuleRefusedError(f"the module is {len(wasm)} bytes, over {MODULE_BYTES_MAX}")
    # wasmtime.Module compiles bytes that do not start with 0 as WAT text: only binaries pass.
    if not wasm.startswith(WASM_MAGIC):
        raise ModuleRefusedError("not a WebAssembly binary (bad magic/version)")
    try:
        wasmtime.Module.validate(engine, wasm)
    except wasmtime.WasmtimeError as error:
        raise ModuleRefusedError(f"invalid WebAssembly: {_first_line(error)}") from None
    module = wasmtime.Module(engine, wasm)
    check_interface(module)
    return module


def check_interface(module: wasmtime.Module) -> None:
    """The import policy: WASI preview 1 only; a command exports _start and memory."""
    for imported in module.imports:
        if imported.module != WASI_MODULE:
            raise ModuleRefusedError(
                f"import {imported.module}.{imported.name} is outside {WASI_MODULE}"
            )
    names = {exported.name for exported in module.exports}
    if "_start" not in names or "memory" not in names:
        raise ModuleRefusedError("a WASI command must export _start and memory")


class ModuleCache:
    """Compiled modules by (SHA-256 of the wasm, runtime, engine config): in memory, and as
    artifacts in the agent's own data directory. An artifact is native code wasmtime trusts
    as-is, so only artifacts this agent compiled itself are kept, and any that fails to load
    is compiled again."""

    def __init__(self, engine: wasmtime.Engine, directory: Path | None) -> None:
        self._engine = engine
        self._directory = directory
        self._memory: OrderedDict[bytes, wasmtime.Module] = OrderedDict()
        self._key = hashlib.sha256(f"{runtime()}|{ENGINE_CONFIG}".encode()).hexdigest()[:16]

    def module(self, wasm_path: Path, wasm_sha256: bytes) -> wasmtime.Module:
        cached = self._memory.get(wasm_sha256)
        if cached is not None:
            self._memory.move_to_end(wasm_sha256)
            return cached
        module = self._from_disk(wasm_sha256)
        if module is None:
            wasm = wasm_path.read_bytes()
            if hashlib.sha256(wasm).digest() != wasm_sha256:
                raise SandboxError(f"{wasm_path} does not match its digest")
            module = check_module(self._engine, wasm)
            self._to_disk(wasm_sha256, module)
        self._memory[wasm_sha256] = module
        while len(self._memory) > MODULES_CACHED_MAX:
            self._memory.popitem(last=False)
        return module

    def _path(self, wasm_sha256: bytes) -> Path | None:
        if self._directory is None:
            return None
        return self._directory / f"{wasm_sha256.hex()}-{self._key}.cwasm"

    def _from_disk(self, wasm_sha256: bytes) -> wasmtime.Module | None:
        path = self._path(wasm_sha256)
        if path is None or not path.exists():
            return None
        try:
            module = wasmtime.Module.deserialize_file(self._engine, str(path))
        except wasmtime.WasmtimeError:
            path.unlink(missing_ok=True)  # stale or damaged: compile again
            return None
        check_interface(module)
        return module

    def _to_disk(self, wasm_sha256: bytes, module: wasmtime.Module) -> None:
        path = self._path(wasm_sha256)
        if path is None:
            return
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(module.serialize())
        os.replace(partial, path)


class Sandbox:
    """Runs jobs one at a time in this process. One engine per Sandbox: an epoch interrupt is
    engine-wide, so two concurrent runs on one engine would stop each other."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.engine = make_engine()
        self.modules = ModuleCache(self.engine, cache_dir)
        self._lock = threading.Lock()

    def run(
        self,
        job: Job,
        *,
        before_start: Callable[[], None] | None = None,
        stop_when_orphaned: bool = False,
    ) -> Execution:
        """Prepare the run directory, run the module, recount its output. `before_start` runs
        after the module is loaded and before the guest does (the child sets its file-size
        limit there, so writing the compiled-module cache is not limited). A child process
        passes `stop_when_orphaned`: its run stops when the agent that started it is gone."""
        with self._lock:
            module = self.modules.module(job.wasm_path, job.wasm_sha256)
            prepare(job)
            if before_start is not None:
                before_start()
            return _execute(self.engine, module, job, stop_when_orphaned)


def prepare(job: Job) -> None:
    """A fresh run directory: the input copied in (never linked: a guest must not reach the
    agent's blob cache) with a fixed mtime, an empty /out."""
    for name in ("in", "out"):
        shutil.rmtree(job.run_dir / name, ignore_errors=True)
    for name in ("stdout", "stderr"):
        (job.run_dir / name).unlink(missing_ok=True)
    (job.run_dir / "in").mkdir(mode=0o700, parents=True)
    (job.run_dir / "out").mkdir(mode=0o700)
    if job.input_path is not None:
        staged = job.run_dir / "in" / INPUT_NAME
        shutil.copyfile(job.input_path, staged)
        seconds = job.clock_ns // _NANOS_PER_SECOND
        os.utime(staged, (seconds, seconds))


def _execute(
    engine: wasmtime.Engine, module: wasmtime.Module, job: Job, stop_when_orphaned: bool
) -> Execution:
    store = wasmtime.Store(engine)
    store.set_fuel(job.limits.fuel_max)
    store.set_limits(memory_size=job.limits.memory_bytes_max, instances=1, tables=1, memories=1)
    store.set_epoch_deadline(1)  # required with epoch interruption (else the first check traps)
    store.set_wasi(_wasi_config(job))
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    _shadow_nondeterminism(linker, job)
    watcher = _Watcher(engine, job, stop_when_orphaned)
    started = time.monotonic()
    try:
        instance = linker.instantiate(store, module)
    except wasmtime.WasmtimeError as error:  # e.g. a memory minimum over the cap
        return Execution(Outcome.TRAP, 0, 0, output_usage(job.run_dir)[0], 0.0, _first_line(error))
    start = instance.exports(store)["_start"]
    assert isinstance(start, wasmtime.Func)
    watcher.start()
    outcome, exit_code, detail = Outcome.OK, 0, ""
    error_code: wasmtime.TrapCode | None = None
    try:
        start(store)
    except wasmtime.ExitTrap as error:  # before Trap: ExitTrap is a WasmtimeError, not a Trap
        exit_code = error.code
        outcome = Outcome.OK if error.code == 0 else Outcome.EXIT
    except wasmtime.Trap as error:
        outcome, detail = _trap_outcome(error, watcher), _first_line(error)
        error_code = error.trap_code
    except wasmtime.WasmtimeError as error:  # a host function failed inside the call
        outcome, detail = Outcome.TRAP, _first_line(error)
    finally:
        watcher.stop()
    wall = time.monotonic() - started
    fuel = job.limits.fuel_max - store.get_fuel()
    if error_code == wasmtime.TrapCode.INTERRUPT:
        # Stopped from outside (wall time, output watcher): wasmtime does not write back the
        # fuel of a loop interrupted through the epoch (it reads 0), so the run is charged
        # its whole fuel: it used its whole allowance of time, or broke the output rule.
        fuel = job.limits.fuel_max
    del start, instance, linker, store  # drop the WASI context now: it closes stdout/stderr
    used, entries = output_usage(job.run_dir)
    # The recount after the run is the authority on the output cap, whatever the exit was.
    if used > job.limits.output_bytes_max or entries > OUTPUT_ENTRIES_MAX:
        outcome = Outcome.OUTPUT_TOO_LARGE
        detail = f"{used} bytes in {entries} entries; the cap is {job.limits.output_bytes_max}"
    return Execution(outcome, exit_code, fuel, used, wall, detail)


def _trap_outcome(error: wasmtime.Trap, watcher: _Watcher) -> Outcome:
    if error.trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
        return Outcome.OUT_OF_FUEL
    if error.trap_code == wasmtime.TrapCode.INTERRUPT:
        return watcher.reason or Outcome.WALL_TIME
    return Outcome.TRAP


def _wasi_config(job: Job) -> wasmtime.WasiConfig:
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["main"]  # no environment: neither set nor inherited; no sockets
    # Plain files, not stdout_custom (its callback runs on wasmtime's threads): both count in
    # the output cap.
    wasi.stdout_file = str(job.run_dir / "stdout")
    wasi.stderr_file = str(job.run_dir / "stderr")
    wasi.preopen_dir(str(job.run_dir / "in"), "/in", fs_mutable=False)  # fd 3
    wasi.preopen_dir(str(job.run_dir / "out"), "/out", fs_mutable=True)  # fd 4
    return wasi


def _shadow_nondeterminism(linker: wasmtime.Linker, job: Job) -> None:
    """clock_time_get answers the fixed instant, clock_res_get 1 ns, random_get a SHA-256
    stream seeded by the request id, poll_oneoff "not supported" (a sleep would wait in the
    host, where neither fuel nor the epoch can stop it): two runs of one ticket see the same
    world."""
    linker.allow_shadowing = True
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    fixed = struct.pack("<Q", job.clock_ns)
    stream = _RandomStream(job.seed)

    def write(caller: wasmtime.Caller, data: bytes, pointer: int) -> int:
        memory = caller["memory"]
        assert isinstance(memory, wasmtime.Memory)
        if pointer < 0 or pointer + len(data) > memory.data_len(caller):
            return _ERRNO_FAULT
        memory.write(caller, data, pointer)
        return 0

    def clock_time_get(caller: wasmtime.Caller, _id: int, _precision: int, out: int) -> int:
        return write(caller, fixed, out)

    def clock_res_get(caller: wasmtime.Caller, _id: int, out: int) -> int:
        return write(caller, struct.pack("<Q", 1), out)

    def random_get(caller: wasmtime.Caller, pointer: int, length: int) -> int:
        if length > MEMORY_BYTES_MAX:
            return _ERRNO_FAULT
        return write(caller, stream.take(length), pointer)

    def poll_oneoff(caller: wasmtime.Caller, _in: int, _out: int, _count: int, _events: int) -> int:
        return _ERRNO_NOTSUP

    shadows: list[tuple[str, list[wasmtime.ValType], Callable[..., int]]] = [
        ("clock_time_get", [i32, i64, i32], clock_time_get),
        ("clock_res_get", [i32, i32], clock_res_get),
        ("random_get", [i32, i32], random_get),
        ("poll_oneoff", [i32, i32, i32, i32], poll_oneoff),
    ]
    for name, params, function in shadows:
        linker.define_func(
            WASI_MODULE, name, wasmtime.FuncType(params, [i32]), function, access_caller=True
        )


class _RandomStream:
    """SHA-256(seed ‖ counter as 8 bytes big-endian) blocks, read in order across calls."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._buffer = b""

    def take(self, length: int) -> bytes:
        chunks = [self._buffer]
        have = len(self._buffer)
        while have < length:
            block = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
            chunks.append(block)
            have += len(block)
        data = b"".join(chunks)
        self._buffer = data[length:]
        return data[:length]


class _Watcher:
    """Stops the run through the engine's epoch when its wall time is up or its output is over
    the cap (or, in a child process, when its parent died). The thread polls; the final
    recount decides the output outcome."""

    def __init__(self, engine: wasmtime.Engine, job: Job, stop_when_orphaned: bool) -> None:
        self._engine = engine
        self._job = job
        self._stop_when_orphaned = stop_when_orphaned
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="sandbox-watch")
        self._parent = os.getppid()
        self.reason: Outcome | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        deadline = time.monotonic() + self._job.limits.run_seconds
        while not self._stop.wait(WATCH_INTERVAL_SECONDS):
            if time.monotonic() >= deadline:
                self._interrupt(Outcome.WALL_TIME)
                return
            used, entries = output_usage(self._job.run_dir)
            if used > self._job.limits.output_bytes_max or entries > OUTPUT_ENTRIES_MAX:
                self._interrupt(Outcome.OUTPUT_TOO_LARGE)
                return
            if (
                self._stop_when_orphaned and os.getppid() != self._parent
            ):  # orphaned: the agent that wanted this run is gone
                self._interrupt(Outcome.WALL_TIME)
                return

    def _interrupt(self, reason: Outcome) -> None:
        self.reason = reason
        self._engine.increment_epoch()


def output_usage(run_dir: Path) -> tuple[int, int]:
    """Bytes counted against the output cap (regular files under out/, stdout, stderr) and the
    number of entries under out/ plus two. A bounded walk that never follows a link: past
    OUTPUT_ENTRIES_MAX entries it stops counting (the run is over the cap anyway)."""
    used, entries = 0, 2
    for name in ("stdout", "stderr"):
        with contextlib.suppress(FileNotFoundError):
            used += os.lstat(run_dir / name).st_size
    stack = [run_dir / "out"]
    while stack and entries <= OUTPUT_ENTRIES_MAX + 2:
        with os.scandir(stack.pop()) as listing:
            for entry in listing:
                entries += 1
                if entries > OUTPUT_ENTRIES_MAX + 2:
                    break
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    used += entry.stat(follow_symlinks=False).st_size
    return used, entries - 2


def _first_line(error: Exception) -> str:
    """The line of a wasmtime message that says what happened (its backtrace is not kept)."""
    lines = [line.strip() for line in str(error).strip().splitlines()]
    for line in lines:
        if line.startswith("wasm trap:"):
            return line
    return lines[0] if lines else type(error).__name__
