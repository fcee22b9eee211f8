"""Submit over gRPC against the empty RPC at the same concurrency (the brief's Submit figure).

A broker on loopback with its full stack — interceptors, auth, validation, the eligibility
check over a real world (Starlink satellites from the bundled snapshot, real stations, 24 h of
computed contacts), three linked pending reservations through the group-committing ledger
writer, the request row and its transitions, all durable — driven by a separate load process
at fixed concurrency. Against it, an empty unary RPC registered on the same server (same
interceptors, same auth), measured before and after; the better of the two is the limit.

The broker runs as in production (settlement by receipts, an enrolled agent per node): each
Submit asks for a scheduling cycle soon, and the cycles (which place the new requests and sign
their tickets) run on the broker's own threads while the load goes on. Their cost is part of
what a tenant's Submit meets, so it stays in the figure.

Figures: `submit_ratio` (target >= 0.5) and p50/p99 beside the empty call's
(`submit_p99_ratio`, target <= 3). With ORBITQ_BENCH_PG_URL set (or PostgreSQL reachable at the
test default), the same on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import secrets
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import wasmtime
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.timestamp_pb2 import Timestamp

from bench.common import peak_rss_mb, percentile, publish
from bench.postgres import postgres_schema
from orbitq.clients import BrokerClient
from orbitq.ledger.model import Kind
from orbitq.services.agents.enrollment import EnrollRequest
from orbitq.services.auth import Principal
from orbitq.services.broker import Broker, init_data_dir
from orbitq.services.config import load_config
from orbitq.services.constellation import NodeImport
from orbitq.services.identity.api_keys import Role
from orbitq.services.orbits import bundled_path
from orbitq.services.quota import new_operation_id
from orbitq.services.server import build_server
from orbitq.v1 import request_pb2

CONCURRENCY = int(os.environ.get("ORBITQ_BENCH_RPC_CONCURRENCY", "32"))
SECONDS = float(os.environ.get("ORBITQ_BENCH_SUBMIT_SECONDS", "6"))
WARMUP_SECONDS = 1.5
SATELLITES = 60
# The bundled Starlink snapshot's epochs are near this instant: the broker's clock starts here.
CLOCK_START = datetime(2025, 12, 6, tzinfo=UTC)
TARGET_RATIO = 0.5
TARGET_P99_RATIO = 3.0
EMPTY_METHOD = "/orbitq.bench.Bench/Empty"
SUBMIT_METHOD = "/orbitq.v1.RequestService/Submit"
OPERATOR = Principal("bench", Role.OPERATOR)
# The smallest valid WASI command: a request must name a pushed module.
AGENT_FUEL_PER_CORE_SECOND = 16 * 10**9
MODULE_WAT = '(module (memory (export "memory") 1) (func (export "_start")))'


def _empty_handler() -> grpc.GenericRpcHandler[Any, Any]:
    def empty(request: bytes, context: grpc.ServicerContext) -> bytes:
        return b""

    handler = grpc.unary_unary_rpc_method_handler(empty)
    return grpc.method_handlers_generic_handler("orbitq.bench.Bench", {"Empty": handler})


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _submit_bytes(workload: str, now: datetime) -> bytes:
    """One Submit's body; the load process only changes its idempotency key (field 2)."""
    spec = request_pb2.RequestSpec(
        name="bench",
        workload=workload,
        cpu_millicores=100,
        run_seconds=60,
        storage_mb=10,
        output_mb=1,
        not_before=_timestamp(now),
        deadline=_timestamp(now + timedelta(hours=20)),
    )
    return request_pb2.SubmitRequest(spec=spec).SerializeToString()


async def _load(target: str, key: str, kind: str, body: bytes) -> dict[str, float]:
    metadata = (("authorization", f"Bearer {key}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        method = EMPTY_METHOD if kind == "empty" else SUBMIT_METHOD
        call = channel.unary_unary(method, None, None)
        latencies: list[float] = []
        measure_from = time.perf_counter() + WARMUP_SECONDS
        deadline = measure_from + SECONDS
        count = 0

        async def worker() -> None:
            nonlocal count
            while (began := time.perf_counter()) < deadline:
                if kind == "empty":
                    await call(b"", metadata=metadata, timeout=30)
                else:
                    # A fresh idempotency key per call (field 2, 32 characters).
                    idempotency = b"\x12\x20" + secrets.token_hex(16).encode()
                    await call(body + idempotency, metadata=metadata, timeout=30)
                if began >= measure_from:
                    latencies.append(time.perf_counter() - began)
                    count += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    latencies.sort()
    return {
        "per_s": count / SECONDS,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def _load_process(target: str, key: str, kind: str, body: bytes, queue: Any) -> None:
    queue.put(asyncio.run(_load(target, key, kind, body)))


def _world(broker: Broker) -> None:
    """The satellites, every bundled station, 24 h of contacts, and an enrolled agent per node
    (placement needs one: tickets are signed for it)."""
    lines = bundled_path("starlink").read_text(encoding="ascii").splitlines()
    text = "\n".join(lines[: 3 * SATELLITES]) + "\n"
    broker.constellation.import_nodes(OPERATOR, NodeImport(text=text))
    broker.constellation.import_stations(
        OPERATOR, bundled_path("ground-stations").read_text(encoding="utf-8")
    )
    broker.refresh_contacts()
    for node in broker.constellation.nodes():
        token = broker.agents.create_enrollment_token(OPERATOR, node.id, "contacts", 600)
        public = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        broker.agents.enroll(
            EnrollRequest(node.id, public, token.token, AGENT_FUEL_PER_CORE_SECOND, "bench")
        )


def _run(directory: Path, db_url: str | None) -> dict[str, Any]:
    spec = f"shifted:{CLOCK_START.isoformat().replace('+00:00', 'Z')}"
    init_data_dir(directory, origin="bench.orbitq/submit", db_url=db_url, clock_spec=spec)
    broker = Broker(load_config(directory))
    broker.start()
    running = build_server(broker, "127.0.0.1:0", extra_handlers=[_empty_handler()])
    try:
        target = f"127.0.0.1:{running.port}"
        _world(broker)
        broker.tenants.create(OPERATOR, "bench", "")
        broker.quota.mint(
            OPERATOR,
            "bench",
            {Kind.CPU: 10**15, Kind.STORAGE: 10**15, Kind.LINK: 10**15},
            new_operation_id(),
        )
        key = broker.tenants.issue_key(OPERATOR, Role.TENANT, "bench", "", "bench").token
        with BrokerClient(target, key, timeout=30) as client:
            workload = client.push_workload(bytes(wasmtime.wat2wasm(MODULE_WAT))).digest
        body = _submit_bytes(workload, broker.clock.now())
        context = multiprocessing.get_context("spawn")
        figures: dict[str, dict[str, float]] = {}
        for kind in ("empty", "submit", "empty_again"):
            queue = context.Queue()
            process = context.Process(
                target=_load_process,
                args=(target, key, kind.removesuffix("_again"), body, queue),
            )
            process.start()
            figures[kind] = queue.get(timeout=SECONDS * 10 + 60)
            process.join()
        states = Counter(request.state.name for request in broker.requests.store.all())
    finally:
        running.stop(grace=1.0)
        broker.stop()
    empty = max((figures["empty"], figures["empty_again"]), key=lambda f: f["per_s"])
    submit = figures["submit"]
    return {
        "submits_per_s": round(submit["per_s"]),
        "empty_per_s": round(empty["per_s"]),
        "submit_ratio": round(submit["per_s"] / empty["per_s"], 3),
        "submit_p50_ms": round(submit["p50_ms"], 2),
        "submit_p99_ms": round(submit["p99_ms"], 2),
        "empty_p50_ms": round(empty["p50_ms"], 2),
        "empty_p99_ms": round(empty["p99_ms"], 2),
        "submit_p99_ratio": round(submit["p99_ms"] / empty["p99_ms"], 2),
        "requests_by_state": dict(sorted(states.items())),
    }


def main() -> None:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="orbitq-bench-submit-") as name:
        results["sqlite"] = _run(Path(name) / "sqlite", None)
        with postgres_schema() as url:
            if url is not None:
                results["postgres"] = _run(Path(name) / "postgres", url)
    publish(
        "submit",
        {
            "benchmark": "submit",
            "concurrency": CONCURRENCY,
            "satellites": SATELLITES,
            **results,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "targets": {"submit_ratio": TARGET_RATIO, "submit_p99_ratio_max": TARGET_P99_RATIO},
        },
    )


if __name__ == "__main__":
    main()
