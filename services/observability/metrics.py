"""Prometheus metrics of one broker, and the HTTP endpoint that serves them.

Owns: one `CollectorRegistry` per broker (never the process-global one: tests run several
brokers in one process), the metric families (docs/operator.md, "Metrics and logs", lists
them), and `MetricsEndpoint` (prometheus_client's WSGI server on a thread, bound to loopback
unless the operator names another host).
- Events are counted as they happen: RPCs (`RpcMetrics`, fed by interceptor.py), ledger group
  commits (`Broker.on_commit`) and scheduling cycles (`SchedulingLoop.on_cycle`).
- State is read when scraped (`_StateCollector`): the writer's queue, the last checkpoint, the
  pending requests by reason, the contact plan's horizon and the agents' heartbeats — a few
  indexed reads, each bounded, each failing alone (logged; its families left out).
Label values are bounded by construction: methods come from the services' descriptors, status
codes from grpc.StatusCode, reasons from the scheduler's plugin names, nodes (agents only) at
most AGENT_SERIES_MAX. No tenant name, key or id ever becomes a label, and no secret is read.
Does not own: the broker's state, or when calls happen.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

import grpc
import sqlalchemy as sa
from google.protobuf import descriptor_pool
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlmodel import SQLModel

from orbitq.services.clock import NANOS_PER_SECOND
from orbitq.services.requests.model import RequestState

if TYPE_CHECKING:
    from orbitq.ledger.store.writer import CommitInfo
    from orbitq.services.broker import Broker
    from orbitq.services.scheduling.reports import CycleReport

log = logging.getLogger(__name__)

NAMESPACE = "orbitq"
OTHER = "other"
# Pending requests read per scrape (the reason of the rest is not examined, they count as other).
PENDING_READ_MAX = 10_000
# Distinct reason labels; plugin names are a handful, so this is only a guard.
REASONS_MAX = 32
WAITING = "waiting"
AGENT_SERIES_MAX = 100
_REASON_NAME = re.compile(r"[a-z_]{1,32}")
RPC_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
CYCLE_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
GROUP_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16_384)
CYCLE_OUTCOMES = ("placed", "displaced", "unschedulable", "pending", "evacuated")
LOOPBACK = "127.0.0.1"


def known_methods(service_names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Every method path of `service_names` -> (service, method), from the descriptors."""
    pool = descriptor_pool.Default()
    methods: dict[str, tuple[str, str]] = {}
    for name in service_names:
        try:
            service = pool.FindServiceByName(name)
        except KeyError:
            continue
        for method in service.methods:
            methods[f"/{service.full_name}/{method.name}"] = (service.full_name, method.name)
    return methods


class RpcMetrics:
    """Calls by method and status, their latency, and calls in flight."""

    def __init__(self, registry: CollectorRegistry, service_names: Iterable[str]) -> None:
        self._methods = known_methods(service_names)
        self._requests = Counter(
            "rpc_requests",
            "RPCs finished, by service, method and gRPC status code",
            ("service", "method", "code"),
            namespace=NAMESPACE,
            registry=registry,
        )
        self._seconds = Histogram(
            "rpc_duration_seconds",
            "RPC latency in the broker (streams: until the stream ends)",
            ("service", "method"),
            namespace=NAMESPACE,
            registry=registry,
            buckets=RPC_SECONDS_BUCKETS,
        )
        self._in_flight = Gauge(
            "rpc_in_flight",
            "RPCs being served now",
            namespace=NAMESPACE,
            registry=registry,
        )

    def labels_of(self, path: str) -> tuple[str, str]:
        return self._methods.get(path, (OTHER, OTHER))

    def started(self, labels: tuple[str, str]) -> None:
        self._in_flight.inc()

    def finished(self, labels: tuple[str, str], code: grpc.StatusCode, seconds: float) -> None:
        self._in_flight.dec()
        name = code.name if isinstance(code, grpc.StatusCode) else OTHER
        self._requests.labels(*labels, name).inc()
        self._seconds.labels(*labels).observe(seconds)


class BrokerMetrics:
    """All metrics of one broker: `rpc` for the interceptor, hooks on the broker, and the
    collector of its state."""

    def __init__(self, broker: Broker, service_names: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.rpc = RpcMetrics(self.registry, service_names)
        self._group_size = Histogram(
            "ledger_writer_group_size",
            "Work items per ledger group commit",
            namespace=NAMESPACE,
            registry=self.registry,
            buckets=GROUP_SIZE_BUCKETS,
        )
        self._cycle_seconds = Histogram(
            "scheduling_cycle_duration_seconds",
            "Time of one scheduling cycle (on the leading replica)",
            namespace=NAMESPACE,
            registry=self.registry,
            buckets=CYCLE_SECONDS_BUCKETS,
        )
        self._cycles = Counter(
            "scheduling_cycles",
            "Scheduling cycles, by whether this replica led and ran them",
            ("ran",),
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self._outcomes = Counter(
            "scheduling_cycle_requests",
            "Requests by what a cycle did with them",
            ("outcome",),
            namespace=NAMESPACE,
            registry=self.registry,
        )
        for outcome in CYCLE_OUTCOMES:
            self._outcomes.labels(outcome)
        for ran in ("true", "false"):
            self._cycles.labels(ran)
        self.registry.register(_StateCollector(broker))
        broker.on_commit(self._committed)
        broker.scheduling.on_cycle(self._cycled)

    def _committed(self, info: CommitInfo) -> None:
        self._group_size.observe(info.items)

    def _cycled(self, report: CycleReport, seconds: float) -> None:
        self._cycles.labels("true" if report.ran else "false").inc()
        if not report.ran:
            return
        self._cycle_seconds.observe(seconds)
        for outcome in CYCLE_OUTCOMES:
            count = len(getattr(report, outcome))
            if count:
                self._outcomes.labels(outcome).inc(count)


# -- state read at scrape time -----------------------------------------------------------------


def _table(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


class _StateCollector(Collector):
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def describe(self) -> Iterable[Metric]:
        # Families are known only at collect time; describing none keeps registration cheap.
        return []

    def collect(self) -> Iterator[Metric]:
        now_ns = self._broker.now_ns()
        for read in (self._writer, self._checkpoint, self._pending, self._plan, self._agents):
            try:
                families = list(read(now_ns))
            except Exception:
                log.warning("metrics: reading %s failed", read.__name__, exc_info=True)
                continue
            yield from families

    def _writer(self, now_ns: int) -> Iterator[Metric]:
        writer = self._broker.writer
        yield _gauge(
            "ledger_writer_queue_depth",
            "Work items queued for the ledger writer",
            writer.queue_depth,
        )
        yield _gauge(
            "ledger_writer_halted",
            "1 once the ledger writer halted on a broken invariant",
            float(writer.halt_reason is not None),
        )

    def _checkpoint(self, now_ns: int) -> Iterator[Metric]:
        checkpoints, head = _table("ledger_checkpoints"), _table("ledger_head")
        with self._broker.engine.connect() as connection:
            latest = connection.execute(
                sa.select(checkpoints.c.size, checkpoints.c.timestamp_ns)
                .order_by(checkpoints.c.size.desc())
                .limit(1)
            ).first()
            size = connection.execute(sa.select(head.c.size)).scalar()
        if latest is None:
            return
        yield _gauge(
            "ledger_checkpoint_age_seconds",
            "Seconds since the newest signed checkpoint (broker clock)",
            max(0, now_ns - latest.timestamp_ns) / NANOS_PER_SECOND,
        )
        yield _gauge(
            "ledger_entries_after_checkpoint",
            "Ledger entries appended since the newest checkpoint",
            max(0, int(size or 0) - latest.size),
        )

    def _pending(self, now_ns: int) -> Iterator[Metric]:
        requests = _table("requests")
        with self._broker.engine.connect() as connection:
            rows = connection.execute(
                sa.select(requests.c.placement_reasons)
                .where(requests.c.state == int(RequestState.PENDING))
                .limit(PENDING_READ_MAX + 1)
            ).all()
        counts: dict[str, int] = {WAITING: 0}
        for row in rows[:PENDING_READ_MAX]:
            reason = _reason_of(row.placement_reasons)
            if reason not in counts and len(counts) >= REASONS_MAX:
                reason = OTHER
            counts[reason] = counts.get(reason, 0) + 1
        if len(rows) > PENDING_READ_MAX:
            counts[OTHER] = counts.get(OTHER, 0) + 1
        family = GaugeMetricFamily(
            f"{NAMESPACE}_requests_pending",
            "Pending requests by why the last cycle did not place them (the scheduler plugin"
            " that turned most nodes away; waiting: not examined yet)",
            labels=("reason",),
        )
        for reason, count in sorted(counts.items()):
            family.add_metric((reason,), count)
        yield family

    def _plan(self, now_ns: int) -> Iterator[Metric]:
        plan = self._broker.constellation.plan()
        yield _gauge(
            "contact_plan_horizon_seconds",
            "Seconds of the contact plan ahead of now (0: none stored)",
            max(0, plan.horizon_end_ns - now_ns) / NANOS_PER_SECOND,
        )
        yield _gauge(
            "contact_plan_refresh_age_seconds",
            "Seconds since the contact plan was last refreshed",
            max(0, now_ns - plan.refreshed_ns) / NANOS_PER_SECOND if plan.refreshed_ns else 0,
        )
        yield _gauge(
            "contact_plan_version", "Refreshes and imports of the contact plan", plan.version
        )

    def _agents(self, now_ns: int) -> Iterator[Metric]:
        agents = _table("node_agents")
        with self._broker.engine.connect() as connection:
            enrolled = connection.execute(sa.select(sa.func.count()).select_from(agents)).scalar()
            silent = connection.execute(
                sa.select(sa.func.count())
                .select_from(agents)
                .where(agents.c.last_heartbeat_ns.is_(None))
            ).scalar()
            oldest = connection.execute(sa.select(sa.func.min(agents.c.last_heartbeat_ns))).scalar()
            rows = connection.execute(
                sa.select(agents.c.node, agents.c.last_heartbeat_ns)
                .where(agents.c.last_heartbeat_ns.is_not(None))
                .order_by(agents.c.node)
                .limit(AGENT_SERIES_MAX)
            ).all()
        yield _gauge("agents_enrolled", "Enrolled node agents", int(enrolled or 0))
        yield _gauge(
            "agents_never_heartbeat", "Enrolled node agents never heard from", int(silent or 0)
        )
        yield _gauge(
            "agent_heartbeat_oldest_age_seconds",
            "Seconds since the least recent heartbeat of any agent that has sent one",
            max(0, now_ns - int(oldest)) / NANOS_PER_SECOND if oldest is not None else 0,
        )
        family = GaugeMetricFamily(
            f"{NAMESPACE}_agent_last_heartbeat_timestamp_seconds",
            f"Unix time of each agent's last heartbeat (the first {AGENT_SERIES_MAX} nodes by id)",
            labels=("node",),
        )
        for row in rows:
            family.add_metric((row.node,), row.last_heartbeat_ns / NANOS_PER_SECOND)
        yield family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{NAMESPACE}_{name}", documentation, value=value)


def _reason_of(text: str | None) -> str:
    if not text:
        return WAITING
    try:
        reasons = json.loads(text)
        plugin = reasons[0]["plugin"]
    except (ValueError, LookupError, TypeError):
        return OTHER
    return plugin if isinstance(plugin, str) and _REASON_NAME.fullmatch(plugin) else OTHER


# -- the endpoint ------------------------------------------------------------------------------


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT, :PORT or PORT (host: loopback) -> (host, port); ValueError when malformed."""
    host, _, port_text = text.rpartition(":")
    host = host.strip("[]") or LOOPBACK
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65_535:
        raise ValueError(f"metrics address {text!r}: use HOST:PORT, e.g. 127.0.0.1:9464")
    return host, int(port_text)


@dataclass
class MetricsEndpoint:
    """prometheus_client's HTTP server on a daemon thread; `stop()` closes it."""

    server: WSGIServer
    thread: threading.Thread
    host: str
    port: int

    @classmethod
    def start(cls, listen: str, registry: CollectorRegistry) -> MetricsEndpoint:
        host, port = parse_listen(listen)
        if host not in (LOOPBACK, "localhost", "::1"):
            log.warning(
                "metrics served on %s, beyond loopback: anyone who reaches it sees the broker's"
                " load (no tenant data, no secrets)",
                host,
            )
        server, thread = start_http_server(port, addr=host, registry=registry)
        return cls(server, thread, host, int(server.server_address[1]))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
