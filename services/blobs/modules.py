"""Checking a tenant's WebAssembly module before it is stored (PushWorkload).

Owns: the rules, in order, each an INVALID_ARGUMENT a person can act on:
1. the bytes start with the WebAssembly binary header (`\\0asm`, version 1). Checked first
   and by hand: wasmtime compiles bytes that do not start with a zero byte as WAT text, so
   without it a tenant could push "(module ...)" source;
2. wasmtime validates the module (`Module.validate`), with the features the node agents'
   engines enable (no threads, no relaxed SIMD);
3. every import is from `wasi_snapshot_preview1` (no other host functions exist onboard);
4. it is a WASI command: it exports `_start` and `memory`.

Does not own: running modules (the node agent's sandbox) or storing them (store.py).
"""

from __future__ import annotations

import threading

import wasmtime

from orbitq.services.errors import InvalidArgumentError

WASM_HEADER = b"\x00asm\x01\x00\x00\x00"
WASI_MODULE = "wasi_snapshot_preview1"
REQUIRED_EXPORTS = ("_start", "memory")
# Imports of one module named in the answer (WASI preview 1 has 46 functions).
IMPORTS_LISTED_MAX = 64
MESSAGE_CHARS_MAX = 300

_engine: wasmtime.Engine | None = None
_engine_lock = threading.Lock()


def _shared_engine() -> wasmtime.Engine:
    global _engine  # noqa: PLW0603 (one engine per process: it is thread-safe and costly)
    with _engine_lock:
        if _engine is None:
            config = wasmtime.Config()
            config.wasm_threads = False
            config.wasm_relaxed_simd = False
            config.parallel_compilation = False
            _engine = wasmtime.Engine(config)
        return _engine


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:MESSAGE_CHARS_MAX]


def check_module(module: bytes) -> tuple[str, ...]:
    """The WASI functions a valid module imports, or InvalidArgumentError saying why not."""
    if not module.startswith(WASM_HEADER):
        raise InvalidArgumentError(
            "module: not a WebAssembly binary (bad magic/version: expected \\0asm version 1;"
            " compile WAT to a binary first, e.g. wat2wasm)"
        )
    engine = _shared_engine()
    try:
        wasmtime.Module.validate(engine, module)
        compiled = wasmtime.Module(engine, module)
    except wasmtime.WasmtimeError as error:
        raise InvalidArgumentError(f"module: invalid WebAssembly: {_first_line(error)}") from None
    imports: list[str] = []
    for item in compiled.imports:
        if item.module != WASI_MODULE:
            raise InvalidArgumentError(
                f"module: import {item.module}.{item.name} is outside {WASI_MODULE}: a"
                " workload may use WASI preview 1 only"
            )
        imports.append(str(item.name))
    exports = {item.name for item in compiled.exports}
    missing = [name for name in REQUIRED_EXPORTS if name not in exports]
    if missing:
        raise InvalidArgumentError(
            f"module: a WASI command must export _start and memory; it lacks {', '.join(missing)}"
        )
    return tuple(sorted(set(imports)))[:IMPORTS_LISTED_MAX]
