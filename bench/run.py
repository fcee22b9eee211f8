"""`make bench`: run every benchmark module in turn; each prints one JSON object and writes
bench/results/<name>.json."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS: tuple[str, ...] = (
    "ledger",
    "ledger_postgres",
    "submit",
    "rpc_paths",
    "ledger_verify",
    "agent_formats",
    "wasm_metering",
    "receipt_settlement",
    "contacts",
    "scheduler",
    "scheduler_cpsat",
    "sim_agents",
    "explain",
)


def main() -> int:
    for name in BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
