"""The RPC path's candidates measured side by side (issue: the ledger writer off the GIL's
critical path): today's thread-pool gRPC server against a `grpc.aio` server on the same broker.

One broker (embedded SQLite, its group-committing writer thread) serves two ports:

- `threads`: the production server (build_server: 64 handler threads, the full interceptor
  chain). A Transfer occupies a handler thread while it waits for its group commit.
- `asyncio`: a grpc.aio server on one event loop thread. The handler authenticates through the
  same Authenticator (cached, as in production), builds the transfers through
  Quota.transfer_chain and *awaits* the writer's future: no thread is parked per call, so the writer
  competes for the GIL with one loop thread instead of dozens of handler threads. It skips the
  interceptors' logging and metrics, and so does its empty call, so each ratio compares like
  with like.

Each candidate is driven by the same separate load process (bench/ledger.py's, fixed
concurrency) and reported as Transfer / empty on its own server (target >= 0.5), with p50/p99.
The asyncio candidate is a measurement, not a second production path: see docs/performance.md
for what the figures decided.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import tempfile
import threading
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from bench.common import peak_rss_mb, publish
from bench.ledger import RPC_CONCURRENCY, RPC_SECONDS, _load_process
from orbitq.ledger.model import Kind, Outcome
from orbitq.ledger.store import CreateTransfers
from orbitq.services.auth import Principal
from orbitq.services.broker import Broker, init_data_dir
from orbitq.services.config import load_config
from orbitq.services.identity.api_keys import Role
from orbitq.services.quota import new_operation_id
from orbitq.services.server import build_server, freeze_startup_heap
from orbitq.v1 import quota_pb2

TARGET_RATIO = 0.5
OPERATOR = Principal("bench", Role.OPERATOR)
LOAD_TIMEOUT_SECONDS = RPC_SECONDS * 10 + 60


def _metadata_token(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode()
    return None


def _aio_handlers(broker: Broker) -> list[grpc.GenericRpcHandler[Any, Any]]:
    authenticate = broker.authenticator.authenticate

    async def empty(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        authenticate(_metadata_token(context))
        return b""

    async def transfer(
        request: quota_pb2.TransferRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> quota_pb2.TransferResponse:
        principal = authenticate(_metadata_token(context))
        # The production path's checks and transfers (Quota.transfer_chain); only the wait for
        # the writer differs: awaited here, a parked thread there.
        chained, source = broker.quota.transfer_chain(
            principal,
            "",
            request.to_tenant,
            {Kind.CPU: request.amounts.cpu},
            int.from_bytes(request.id, "big") or new_operation_id(),
        )
        future = broker.writer.submit(CreateTransfers(tuple(chained)))
        result = await asyncio.wrap_future(future)
        outcomes = [outcome for outcome in result if isinstance(outcome, Outcome)]
        broker.quota.raise_for(outcomes, chained, source)
        return quota_pb2.TransferResponse()

    return [
        grpc.method_handlers_generic_handler(
            "orbitq.bench.Bench", {"Empty": grpc.unary_unary_rpc_method_handler(empty)}
        ),
        grpc.method_handlers_generic_handler(
            "orbitq.v1.QuotaService",
            {
                "Transfer": grpc.unary_unary_rpc_method_handler(
                    transfer,
                    request_deserializer=quota_pb2.TransferRequest.FromString,
                    response_serializer=quota_pb2.TransferResponse.SerializeToString,
                )
            },
        ),
    ]


class _AioServer:
    """A grpc.aio server on its own event loop thread, on an ephemeral loopback port."""

    def __init__(self, handlers: list[grpc.GenericRpcHandler[Any, Any]]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: grpc.aio.Server | None = None
        self.port = self._call(self._start(handlers))

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    async def _start(self, handlers: list[grpc.GenericRpcHandler[Any, Any]]) -> int:
        self._server = grpc.aio.server(
            handlers=handlers, options=[("grpc.so_reuseport", 0)], maximum_concurrent_rpcs=256
        )
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return port

    def stop(self) -> None:
        if self._server is not None:
            self._call(self._server.stop(grace=1.0))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def _drive(target: str, key: str) -> dict[str, dict[str, float]]:
    context = multiprocessing.get_context("spawn")
    figures: dict[str, dict[str, float]] = {}
    for kind in ("empty", "transfer", "empty_again"):
        queue = context.Queue()
        process = context.Process(
            target=_load_process, args=(target, key, kind.removesuffix("_again"), queue)
        )
        process.start()
        figures[kind] = queue.get(timeout=LOAD_TIMEOUT_SECONDS)
        process.join()
    return figures


def _summary(figures: dict[str, dict[str, float]]) -> dict[str, float]:
    empty = max((figures["empty"], figures["empty_again"]), key=lambda f: f["per_s"])
    transfer = figures["transfer"]
    return {
        "transfers_per_s": round(transfer["per_s"]),
        "empty_per_s": round(empty["per_s"]),
        "ratio": round(transfer["per_s"] / empty["per_s"], 3),
        "transfer_p50_ms": round(transfer["p50_ms"], 2),
        "transfer_p99_ms": round(transfer["p99_ms"], 2),
        "empty_p99_ms": round(empty["p99_ms"], 2),
    }


def _empty_threads_handler() -> grpc.GenericRpcHandler[Any, Any]:
    def empty(request: bytes, context: grpc.ServicerContext) -> bytes:
        return b""

    handler = grpc.unary_unary_rpc_method_handler(empty)
    return grpc.method_handlers_generic_handler("orbitq.bench.Bench", {"Empty": handler})


def run(directory: Path) -> dict[str, dict[str, float]]:
    init_data_dir(directory, origin="bench.orbitq/rpc-paths")
    broker = Broker(load_config(directory))
    broker.start()
    threads = build_server(broker, "127.0.0.1:0", extra_handlers=[_empty_threads_handler()])
    aio = _AioServer(_aio_handlers(broker))
    freeze_startup_heap()  # as `serve` does once the broker serves
    candidates = {"threads": threads.port, "asyncio": aio.port}
    try:
        broker.tenants.create(OPERATOR, "payer", "")
        broker.tenants.create(OPERATOR, "payee", "")
        broker.quota.mint(OPERATOR, "payer", {Kind.CPU: 10**15}, secrets.randbits(120) + 1)
        key = broker.tenants.issue_key(OPERATOR, Role.TENANT, "payer", "", "bench").token
        return {
            name: _summary(_drive(f"127.0.0.1:{port}", key)) for name, port in candidates.items()
        }
    finally:
        aio.stop()
        threads.stop(grace=1.0)
        broker.stop()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="orbitq-bench-rpc-paths-") as name:
        results = run(Path(name) / "broker")
    publish(
        "rpc_paths",
        {
            "benchmark": "rpc_paths",
            "concurrency": RPC_CONCURRENCY,
            **results,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "targets": {"ratio": TARGET_RATIO},
        },
    )


if __name__ == "__main__":
    main()
