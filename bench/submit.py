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

On PostgreSQL also `raw_executemany_ratio` (issue 13 item 3, target >= 0.5): Submits/s against
raw inserts of the same rows on the same server. The rows are read back after the run from
the broker's own schema — per Submit, its three reservations (transfer row, log entry, pending
status) and its request row with its first two transitions, as stored at the end — and written
into a fresh schema migrated the same way with psycopg `executemany` (pipelined), one commit per
batch of as many Submits as the broker's ledger groups held on average during the Submit load
(the same number of durable commits for the same rows). Untimed: reading them back, and the
tenant row the requests' foreign key needs.
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
import psycopg
import wasmtime
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.timestamp_pb2 import Timestamp

from bench.common import peak_rss_mb, percentile, publish
from bench.postgres import postgres_schema, psycopg_conninfo, raw_connection
from orbitq.clients import BrokerClient
from orbitq.ledger.model import Code, Kind
from orbitq.ledger.store.rows import TRANSFER_COLUMNS
from orbitq.ledger.store.writer import CommitInfo
from orbitq.services.agents.enrollment import EnrollRequest
from orbitq.services.auth import Principal
from orbitq.services.broker import Broker, init_data_dir
from orbitq.services.config import load_config
from orbitq.services.constellation import NodeImport
from orbitq.services.identity.api_keys import Role
from orbitq.services.orbits import bundled_path
from orbitq.services.quota import new_operation_id
from orbitq.services.server import build_server, freeze_startup_heap
from orbitq.v1 import request_pb2

CONCURRENCY = int(os.environ.get("ORBITQ_BENCH_RPC_CONCURRENCY", "32"))
SECONDS = float(os.environ.get("ORBITQ_BENCH_SUBMIT_SECONDS", "6"))
WARMUP_SECONDS = 1.5
SATELLITES = 60
# The bundled Starlink snapshot's epochs are near this instant: the broker's clock starts here.
CLOCK_START = datetime(2025, 12, 6, tzinfo=UTC)
TARGET_RATIO = 0.5
TARGET_P99_RATIO = 3.0
TARGET_RAW_RATIO = 0.5  # PostgreSQL: Submits/s against raw inserts of their rows (issue 13)
EMPTY_METHOD = "/orbitq.bench.Bench/Empty"
SUBMIT_METHOD = "/orbitq.v1.RequestService/Submit"
OPERATOR = Principal("bench", Role.OPERATOR)
# The smallest valid WASI command: a request must name a pushed module.
AGENT_FUEL_PER_CORE_SECOND = 16 * 10**9
MODULE_WAT = '(module (memory (export "memory") 1) (func (export "_start")))'


# Per table, in an order the foreign keys allow, the query that reads back the Submits' rows
# (the column list: None for every column), each ordered by Submit so that equal shares of
# every table hold the rows of the same Submits.
_RESERVE = int(Code.RESERVE)
SUBMIT_ROWS: tuple[tuple[str, str], ...] = (
    (
        "ledger_transfers",
        f"SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE code = {_RESERVE}"
        " ORDER BY timestamp_ns",
    ),
    (
        "ledger_entries",
        "SELECT e.idx, e.data, e.hashes FROM ledger_entries e"
        f" JOIN ledger_transfers t ON t.entry_index = e.idx WHERE t.code = {_RESERVE}"
        " ORDER BY e.idx",
    ),
    (
        "ledger_pending",
        "SELECT p.id, p.status, p.expires_ns FROM ledger_pending p"
        f" JOIN ledger_transfers t ON t.id = p.id WHERE t.code = {_RESERVE}"
        " ORDER BY t.timestamp_ns",
    ),
    ("requests", "SELECT * FROM requests ORDER BY submitted_ns, id"),
    (
        "request_transitions",
        "SELECT x.* FROM request_transitions x JOIN requests r ON r.id = x.request_id"
        " WHERE x.sequence <= 2 ORDER BY r.submitted_ns, r.id, x.sequence",
    ),
)
Table = tuple[str, str, list[tuple[Any, ...]]]  # name, columns, rows


def _submit_rows(db_url: str) -> tuple[list[Table], list[tuple[Any, ...]], str]:
    """The Submits' rows, table by table; and the tenants' rows with their columns."""
    tables: list[Table] = []
    with psycopg.connect(psycopg_conninfo(db_url), autocommit=True) as reader:
        for name, query in SUBMIT_ROWS:
            cursor = reader.execute(query)
            assert cursor.description is not None
            columns = ", ".join(column.name for column in cursor.description)
            tables.append((name, columns, cursor.fetchall()))
        cursor = reader.execute("SELECT * FROM tenants")
        assert cursor.description is not None
        tenant_columns = ", ".join(column.name for column in cursor.description)
        return tables, cursor.fetchall(), tenant_columns


def _insert(cursor: psycopg.Cursor[Any], table: str, columns: str, rows: list[Any]) -> None:
    if rows:
        marks = ", ".join(["%s"] * len(columns.split(",")))
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)


def _batch(tables: list[Table], batch: int, commits: int) -> list[Table]:
    """The rows of the `batch`th of `commits` equal shares of the Submits: an equal share of
    each ledger table's rows, and the transitions of exactly the share's requests (their
    foreign key)."""
    shares: list[Table] = []
    requests: set[Any] = set()
    for name, columns, rows in tables:
        names = [column.strip() for column in columns.split(",")]
        if name == "request_transitions":
            at = names.index("request_id")
            shares.append((name, columns, [row for row in rows if row[at] in requests]))
            continue
        share = rows[len(rows) * batch // commits : len(rows) * (batch + 1) // commits]
        if name == "requests":
            at = names.index("id")
            requests = {row[at] for row in share}
        shares.append((name, columns, share))
    return shares


def _raw_submits_per_s(db_url: str, raw_url: str, submits_per_commit: float) -> float:
    """Submits/s of raw executemany inserts of the Submits' rows (module docstring)."""
    tables, tenants, tenant_columns = _submit_rows(db_url)
    submits = len(tables[3][2])  # the request rows
    assert submits > 0
    commits = max(1, round(submits / max(submits_per_commit, 1.0)))
    connection = raw_connection(raw_url)
    try:
        with connection.cursor() as cursor:
            _insert(cursor, "tenants", tenant_columns, tenants)
        connection.commit()
        batches = [_batch(tables, batch, commits) for batch in range(commits)]
        began = time.perf_counter()
        for batch_tables in batches:
            with connection.cursor() as cursor:
                for name, columns, rows in batch_tables:
                    _insert(cursor, name, columns, rows)
            connection.commit()
        took = time.perf_counter() - began
    finally:
        connection.close()
    return submits / took


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


def _run(directory: Path, db_url: str | None, raw_url: str | None = None) -> dict[str, Any]:
    spec = f"shifted:{CLOCK_START.isoformat().replace('+00:00', 'Z')}"
    init_data_dir(directory, origin="bench.orbitq/submit", db_url=db_url, clock_spec=spec)
    broker = Broker(load_config(directory))
    broker.start()
    running = build_server(broker, "127.0.0.1:0", extra_handlers=[_empty_handler()])
    freeze_startup_heap()  # as `serve` does once the broker serves
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
        # Work items per ledger group commit while the Submit load runs (the writer's thread
        # appends; read once the load is over).
        groups: list[int] = []
        counting = [False]

        def count_group(info: CommitInfo) -> None:
            if counting[0]:
                groups.append(info.items)

        broker.on_commit(count_group)
        for kind in ("empty", "submit", "empty_again"):
            queue = context.Queue()
            process = context.Process(
                target=_load_process,
                args=(target, key, kind.removesuffix("_again"), body, queue),
            )
            counting[0] = kind == "submit"
            process.start()
            figures[kind] = queue.get(timeout=SECONDS * 10 + 60)
            process.join()
            counting[0] = False
        states = Counter(request.state.name for request in broker.requests.store.all())
    finally:
        running.stop(grace=1.0)
        broker.stop()
    empty = max((figures["empty"], figures["empty_again"]), key=lambda f: f["per_s"])
    submit = figures["submit"]
    raw: dict[str, Any] = {}
    if db_url is not None and raw_url is not None:
        per_commit = sum(groups) / max(len(groups), 1)
        raw_per_s = _raw_submits_per_s(db_url, raw_url, per_commit)
        raw = {
            "submits_per_group_commit": round(per_commit, 2),
            "raw_executemany_submits_per_s": round(raw_per_s),
            "raw_executemany_ratio": round(submit["per_s"] / raw_per_s, 3),
        }
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
        **raw,
    }


def main() -> None:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="orbitq-bench-submit-") as name:
        results["sqlite"] = _run(Path(name) / "sqlite", None)
        with postgres_schema() as url, postgres_schema() as raw_url:
            if url is not None and raw_url is not None:
                results["postgres"] = _run(Path(name) / "postgres", url, raw_url)
    publish(
        "submit",
        {
            "benchmark": "submit",
            "concurrency": CONCURRENCY,
            "satellites": SATELLITES,
            **results,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "targets": {
                "submit_ratio": TARGET_RATIO,
                "submit_p99_ratio_max": TARGET_P99_RATIO,
                "raw_executemany_ratio": TARGET_RAW_RATIO,
            },
        },
    )


if __name__ == "__main__":
    main()
