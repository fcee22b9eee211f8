"""The gRPC server of the broker: services, health, reflection, limits, TLS, shutdown.

Owns: building a `grpc.Server` around a Broker — the interceptor chain (logging, error mapping,
stream admission, authentication), the six orbitq services, the
standard health service and server reflection (so grpcurl and `buf curl` work), message size
and concurrency limits, the share of worker threads long-lived streams may hold and their
lifetime, optional TLS — and serving until SIGTERM/SIGINT, then shutting down
gracefully (health NOT_SERVING, stop accepting, let calls in flight finish, stop the broker);
once serving, the start-up heap is frozen out of the cyclic collector's walks
(`freeze_startup_heap`).

Does not own: any method's behaviour.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from orbitq.services.boundary.admission import StreamGate, StreamLimits
from orbitq.services.broker import Broker
from orbitq.services.interceptors import (
    AdmissionInterceptor,
    AuthInterceptor,
    ErrorMappingInterceptor,
    LoggingInterceptor,
)
from orbitq.services.observability.interceptor import ObservabilityInterceptor
from orbitq.services.observability.metrics import BrokerMetrics, MetricsEndpoint
from orbitq.services.servicers.admin import AdminServicer
from orbitq.services.servicers.agent import NodeAgentServicer
from orbitq.services.servicers.constellation import ConstellationServicer
from orbitq.services.servicers.ledger import LedgerServicer
from orbitq.services.servicers.quota import QuotaServicer
from orbitq.services.servicers.requests import RequestServicer
from orbitq.services.signed_log import SignedLog
from orbitq.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    constellation_pb2,
    constellation_pb2_grpc,
    ledger_pb2,
    ledger_pb2_grpc,
    quota_pb2,
    quota_pb2_grpc,
    request_pb2,
    request_pb2_grpc,
)

log = logging.getLogger(__name__)

# Limits of the transport. Every message and list has its own, smaller limit in its servicer.
MESSAGE_BYTES_MAX = 32 * 1024 * 1024
CONCURRENT_RPCS_MAX = 512
WORKER_THREADS = 64
# Long-lived streams may hold at most this many workers: the rest is the reserve unary calls
# always find (issue 16: idle streams without a key must not delay an operator's call).
STREAM_WORKERS_MAX = WORKER_THREADS // 2
SHUTDOWN_GRACE_SECONDS = 10.0

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (admin_pb2, "AdminService"),
        (quota_pb2, "QuotaService"),
        (request_pb2, "RequestService"),
        (constellation_pb2, "ConstellationService"),
        (agent_pb2, "NodeAgentService"),
        (ledger_pb2, "LedgerService"),
    )
)


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    streams: StreamGate

    def stop(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def build_server(
    broker: Broker,
    listen: str,
    *,
    tls: tuple[bytes, bytes] | None = None,
    extra_handlers: Sequence[grpc.GenericRpcHandler[Any, Any]] = (),
    stream_limits: StreamLimits | None = None,
    metrics: BrokerMetrics | None = None,
) -> RunningServer:
    """A started server on `listen` (port 0 picks a free port; see .port). The stream limits
    are the configuration's unless given; `metrics` counts its calls
    (orbitq.services.observability)."""
    config = broker.config
    limits = stream_limits or StreamLimits(
        total_max=config.streams_max,
        per_peer_max=config.streams_per_peer_max,
        lifetime_seconds=config.stream_seconds_max,
    )
    if limits.total_max > STREAM_WORKERS_MAX:
        raise ValueError(
            f"streams_max ({limits.total_max}) may be at most {STREAM_WORKERS_MAX}, half the"
            f" server's {WORKER_THREADS} worker threads: the rest is kept for unary calls"
        )
    gate = StreamGate(limits)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="rpc"),
        interceptors=[
            ObservabilityInterceptor(metrics.rpc if metrics is not None else None),
            LoggingInterceptor(),
            ErrorMappingInterceptor(),
            AdmissionInterceptor(gate),
            AuthInterceptor(broker.authenticator),
        ],
        options=[
            ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
            ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
            ("grpc.so_reuseport", 0),
            *limits.server_options(),
        ],
        maximum_concurrent_rpcs=CONCURRENT_RPCS_MAX,
    )
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(broker.tenants), server)
    quota_pb2_grpc.add_QuotaServiceServicer_to_server(
        QuotaServicer(broker.quota, broker.budgets, broker.usage), server
    )
    signed_log = SignedLog(broker.store, broker.sign_checkpoint, broker.signer.verifier())
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(
        LedgerServicer(signed_log, broker.ticket_signer.verifier_key()), server
    )
    constellation_pb2_grpc.add_ConstellationServiceServicer_to_server(
        ConstellationServicer(broker.constellation, broker.agents), server
    )
    request_pb2_grpc.add_RequestServiceServicer_to_server(
        RequestServicer(broker.requests, broker.blobs, broker.agents, broker.explainer), server
    )
    agent_pb2_grpc.add_NodeAgentServiceServicer_to_server(NodeAgentServicer(broker.agents), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    broker.on_halt(lambda reason: _stop_serving(health_servicer, reason))
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    if extra_handlers:
        server.add_generic_rpc_handlers(tuple(extra_handlers))
    if tls is not None:
        credentials = grpc.ssl_server_credentials([(tls[1], tls[0])])
        port = server.add_secure_port(listen, credentials)
    else:
        port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    server.start()
    return RunningServer(server, port, health_servicer, gate)


def freeze_startup_heap() -> None:
    """Move every object the process holds now (modules, protobuf descriptors, SQLAlchemy's
    tables and compiled statements, the broker's caches: some 160,000 once a broker serves)
    out of the cyclic collector's reach, for good: they live as long as the process, so
    walking them finds nothing, yet each full collection walked them all. Measured under
    bench/receipt_settlement.py: its one full collection took ~210 ms with them and ~27 ms
    without, a pause of the whole process (it holds the GIL) that landed in a receipt round.
    Objects made later are collected as before; frozen ones are still freed by reference
    counting. Call once, after the broker and its server are up (`serve` does)."""
    gc.freeze()


def _stop_serving(health_servicer: health.HealthServicer, reason: str) -> None:
    # Every service the health servicer knows, "" included, turns NOT_SERVING for good.
    log.critical("health: NOT_SERVING (the ledger writer halted): %s", reason)
    health_servicer.enter_graceful_shutdown()


def serve(
    broker: Broker,
    listen: str,
    tls: tuple[bytes, bytes] | None = None,
    metrics_listen: str | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; Prometheus metrics on
    `metrics_listen` (HOST:PORT) when given."""
    metrics, endpoint = None, None
    if metrics_listen:
        metrics = BrokerMetrics(broker, (*SERVICE_NAMES, health.SERVICE_NAME))
        endpoint = MetricsEndpoint.start(metrics_listen, metrics.registry)
    broker.start()
    running = build_server(broker, listen, tls=tls, metrics=metrics)
    freeze_startup_heap()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    host = listen.rsplit(":", 1)[0]
    print(f"orbitq broker listening on {host}:{running.port}", flush=True)
    if endpoint is not None:
        print(f"orbitq metrics on http://{endpoint.host}:{endpoint.port}/metrics", flush=True)
    try:
        stop.wait()
    finally:
        broker.requests.end_watches()  # open watches end now, not after the grace period
        running.stop()
        if endpoint is not None:
            endpoint.stop()
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("orbitq broker stopped", flush=True)
