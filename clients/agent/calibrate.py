"""The node's fuel rate: wasm fuel per core-second, measured once at `orbitq agent init`.

Owns: the fixed reference module (an ALU loop every node runs identically), the measurement
(fuel divided by the CPU time of the calling thread, which other load skews far less than wall
time), and the rounding (the median of a few rounds, rounded DOWN to two significant digits,
so timing noise does not change the enrolled number).

The broker turns reserved core-seconds into a ticket's fuel_max with this rate, and a receipt's
cpu_core_seconds = ceil(fuel / rate): the charge is a pure function of the deterministic fuel.
The rate never enters an audit. It depends on the instruction mix (a byte loop runs about 20%
fewer operators per second than this ALU mix): it is a published, fixed conversion per node,
re-measured only at re-enrolment.

Does not own: the engine (orbitq.clients.agent.sandbox.make_engine, the same the runs use).
"""

from __future__ import annotations

import math
import statistics
import time

import wasmtime

from orbitq.clients.agent.sandbox import make_engine

ROUNDS_DEFAULT = 5
ITERATIONS_DEFAULT = 20_000_000  # about 1.3 G fuel: 50-100 ms a round
FUEL_BUDGET = 10**13
# The range the broker accepts (EnrollNode).
RATE_MIN = 10**8
RATE_MAX = 10**11

# xorshift32 and a multiply-add, n times: no imports, no memory traffic, no I/O.
SPIN_FUNCTION = """
  (func $spin (param $n i32) (result i32)
    (local $x i32) (local $acc i32)
    (local.set $x (i32.const 2463534242))
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 13))))
      (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 17))))
      (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 5))))
      (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (local.get $x)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $acc))
"""
REFERENCE_WAT = f"""(module {SPIN_FUNCTION} (export "spin" (func $spin)))"""


def measure_rates(
    rounds: int = ROUNDS_DEFAULT, iterations: int = ITERATIONS_DEFAULT
) -> list[float]:
    """Fuel per CPU-second of each round."""
    assert 1 <= rounds <= 100
    engine = make_engine()
    module = wasmtime.Module(engine, REFERENCE_WAT)
    rates: list[float] = []
    for _ in range(rounds):
        store = wasmtime.Store(engine)
        store.set_fuel(FUEL_BUDGET)
        store.set_epoch_deadline(1)
        spin = wasmtime.Instance(store, module, []).exports(store)["spin"]
        assert isinstance(spin, wasmtime.Func)
        started = time.thread_time()
        spin(store, iterations)
        cpu = max(time.thread_time() - started, 1e-6)
        rates.append((FUEL_BUDGET - store.get_fuel()) / cpu)
    return rates


def round_down(rate: float) -> int:
    """`rate` rounded down to two significant digits, within [RATE_MIN, RATE_MAX]."""
    unit = 10 ** max(int(math.log10(max(rate, 1.0))) - 1, 0)
    return min(max(int(rate // unit * unit), RATE_MIN), RATE_MAX)


def fuel_per_core_second(rounds: int = ROUNDS_DEFAULT) -> int:
    """The rate this node enrolls."""
    return round_down(statistics.median(measure_rates(rounds)))
