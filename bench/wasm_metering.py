"""Fuel metering's cost: the same wasm run with fuel metering against without it.

The agent meters every run with wasmtime fuel (a deterministic instruction count, the basis of
the receipt's charge). The target (issue 11): a fuel-metered run takes at most 1.5 x the CPU
time of the same module run unmetered. Both engines are the sandbox's own configuration
(`orbitq.clients.agent.sandbox.make_engine`: epoch interruption, speed optimisation, NaN
canonicalisation, ...), the unmetered one with `consume_fuel` off and nothing else changed;
the module is the calibration loop (`orbitq.clients.agent.calibrate.REFERENCE_WAT`: xorshift
and a multiply-add per round), compiled once per engine.

Method: CPU time of this thread (`time.thread_time`: a neighbour's load does not count),
ROUNDS interleaved pairs (metered, then unmetered) of one call of ITERATIONS loop rounds; the
median of the per-round ratios metered / unmetered.

Environment: ORBITQ_BENCH_WASM_ROUNDS overrides ROUNDS (e.g. for a quick run).
"""

from __future__ import annotations

import os
import statistics
import time

import wasmtime

from bench.common import publish
from orbitq.clients.agent.calibrate import REFERENCE_WAT
from orbitq.clients.agent.sandbox import make_engine

ROUNDS = int(os.environ.get("ORBITQ_BENCH_WASM_ROUNDS", "15"))
ITERATIONS = 20_000_000
FUEL_BUDGET = 10**12
TARGET_RATIO = 1.5


def _unmetered_engine() -> wasmtime.Engine:
    """make_engine()'s configuration, fuel metering off."""
    config = wasmtime.Config()
    config.consume_fuel = False
    config.epoch_interruption = True
    config.cranelift_opt_level = "speed"
    config.cranelift_nan_canonicalization = True
    config.wasm_threads = False
    config.wasm_relaxed_simd_deterministic = True
    config.parallel_compilation = False
    return wasmtime.Engine(config)


class _Runner:
    def __init__(self, engine: wasmtime.Engine, metered: bool) -> None:
        self.engine = engine
        self.metered = metered
        self.module = wasmtime.Module(engine, REFERENCE_WAT)
        self.fuel = 0

    def run(self) -> tuple[float, int]:
        """CPU seconds of one call, and what it returned (the same for both engines)."""
        store = wasmtime.Store(self.engine)
        if self.metered:
            store.set_fuel(FUEL_BUDGET)
        store.set_epoch_deadline(1)
        spin = wasmtime.Instance(store, self.module, []).exports(store)["spin"]
        assert isinstance(spin, wasmtime.Func)
        started = time.thread_time()
        value = spin(store, ITERATIONS)
        seconds = max(time.thread_time() - started, 1e-6)
        if self.metered:
            self.fuel = FUEL_BUDGET - store.get_fuel()
        assert isinstance(value, int)
        return seconds, value


def main() -> None:
    metered = _Runner(make_engine(), metered=True)
    unmetered = _Runner(_unmetered_engine(), metered=False)
    metered.run()  # warm both (code pages, caches)
    unmetered.run()
    ratios, metered_s, unmetered_s = [], [], []
    for _ in range(ROUNDS):
        with_fuel, value = metered.run()
        without, same = unmetered.run()
        assert value == same, "the engines disagree on the result"
        metered_s.append(with_fuel)
        unmetered_s.append(without)
        ratios.append(with_fuel / without)
    ratio = statistics.median(ratios)
    publish(
        "wasm_metering",
        {
            "benchmark": "wasm_metering",
            "rounds": ROUNDS,
            "iterations": ITERATIONS,
            "fuel_per_run": metered.fuel,
            "metered_cpu_ms": round(1000 * statistics.median(metered_s), 2),
            "unmetered_cpu_ms": round(1000 * statistics.median(unmetered_s), 2),
            "metering_ratio": round(ratio, 3),
            "metering_ratio_min": round(min(ratios), 3),
            "metering_ratio_max": round(max(ratios), 3),
            "target_metering_ratio_max": TARGET_RATIO,
            "meets_target": ratio <= TARGET_RATIO,
        },
    )


if __name__ == "__main__":
    main()
