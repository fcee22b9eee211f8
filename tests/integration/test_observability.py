"""Metrics and logs of a running broker: the Prometheus endpoint scraped over loopback and parsed
with prometheus_client's own parser (families present, the test's own RPCs counted, no secret
or tenant name in the page), JSON log lines carrying request ids, and `orbitq serve --metrics
--log-format json` end to end."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from orbitq.clients import BrokerClient, UnauthenticatedError
from orbitq.services.observability.logs import JsonFormatter
from orbitq.services.observability.metrics import BrokerMetrics, MetricsEndpoint, parse_listen
from orbitq.services.server import SERVICE_NAMES, build_server
from orbitq.v1 import constellation_pb2, constellation_pb2_grpc
from tests.conftest import EPOCH, BrokerHandle, ServerHandle
from tests.requests.rpc import HOUR, job, world_and_tenant
from tests.requests.sky import build_world

pytestmark = pytest.mark.settlement("plan")

FAMILIES = {
    "orbitq_rpc_requests",
    "orbitq_rpc_duration_seconds",
    "orbitq_rpc_in_flight",
    "orbitq_ledger_writer_queue_depth",
    "orbitq_ledger_writer_group_size",
    "orbitq_ledger_checkpoint_age_seconds",
    "orbitq_ledger_entries_after_checkpoint",
    "orbitq_scheduling_cycle_duration_seconds",
    "orbitq_scheduling_cycles",
    "orbitq_scheduling_cycle_requests",
    "orbitq_requests_pending",
    "orbitq_contact_plan_horizon_seconds",
    "orbitq_contact_plan_refresh_age_seconds",
    "orbitq_agents_enrolled",
    "orbitq_agents_never_heartbeat",
    "orbitq_agent_heartbeat_oldest_age_seconds",
    "orbitq_agent_last_heartbeat_timestamp_seconds",
}
CONSTELLATION = "orbitq.v1.ConstellationService"


class Observed:
    def __init__(self, target: str, metrics_url: str, server: ServerHandle | None = None) -> None:
        self.target = target
        self.metrics_url = metrics_url
        self.server = server

    def scrape(self) -> tuple[str, dict[str, list[Sample]]]:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            text = response.read().decode()
        families = {f.name: f.samples for f in text_string_to_metric_families(text)}
        return text, families


@pytest.fixture
def observed(broker: BrokerHandle) -> Iterator[Observed]:
    metrics = BrokerMetrics(broker.broker, (*SERVICE_NAMES, health.SERVICE_NAME))
    running = build_server(broker.broker, "127.0.0.1:0", metrics=metrics)
    # A bare port binds loopback.
    endpoint = MetricsEndpoint.start("0", metrics.registry)
    try:
        assert endpoint.host == "127.0.0.1"
        target = f"127.0.0.1:{running.port}"
        yield Observed(
            target,
            f"http://127.0.0.1:{endpoint.port}/metrics",
            ServerHandle(target, broker.operator_key, broker.broker, running),
        )
    finally:
        endpoint.stop()
        running.stop(grace=1.0)


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, [s for s in samples if s.name == name])
    return found[0]


def test_the_endpoint_is_parsed_and_counts_the_tests_rpcs(
    broker: BrokerHandle, observed: Observed
) -> None:
    server_broker = broker.broker
    assert observed.server is not None
    with world_and_tenant(observed.server) as acme:
        acme.submit(job())
        # One request beyond the contact plan's horizon: it waits, with a reason.
        acme.submit(job(not_before=EPOCH + 20 * HOUR, deadline=EPOCH + 26 * HOUR))
    server_broker.scheduling.run_cycle()
    server_broker.sign_checkpoint()
    with BrokerClient(observed.target, broker.operator_key, timeout=30) as admin:
        for _ in range(3):
            admin.list_nodes()
    with (
        BrokerClient(observed.target, "oq_nobody_badbadbad", timeout=30) as stranger,
        pytest.raises(UnauthenticatedError),
    ):
        stranger.list_nodes()

    text, families = observed.scrape()
    assert families.keys() >= FAMILIES
    rpcs = families["orbitq_rpc_requests"]
    ok = value(
        rpcs, "orbitq_rpc_requests_total", service=CONSTELLATION, method="ListNodes", code="OK"
    )
    assert ok == 3
    refused = value(
        rpcs,
        "orbitq_rpc_requests_total",
        service=CONSTELLATION,
        method="ListNodes",
        code="UNAUTHENTICATED",
    )
    assert refused == 1
    latency = families["orbitq_rpc_duration_seconds"]
    assert (
        value(
            latency, "orbitq_rpc_duration_seconds_count", service=CONSTELLATION, method="ListNodes"
        )
        == 4
    )
    assert (
        value(families["orbitq_scheduling_cycles"], "orbitq_scheduling_cycles_total", ran="true")
        >= 1
    )
    outcomes = families["orbitq_scheduling_cycle_requests"]
    assert value(outcomes, "orbitq_scheduling_cycle_requests_total", outcome="placed") == 1
    pending = families["orbitq_requests_pending"]
    assert sum(s.value for s in pending) == 1
    assert (
        value(families["orbitq_ledger_writer_group_size"], "orbitq_ledger_writer_group_size_count")
        >= 1
    )
    assert (
        value(
            families["orbitq_contact_plan_horizon_seconds"], "orbitq_contact_plan_horizon_seconds"
        )
        > 3600
    )
    assert (
        value(
            families["orbitq_ledger_checkpoint_age_seconds"], "orbitq_ledger_checkpoint_age_seconds"
        )
        == 0
    )
    # Bounded labels, and nothing a tenant owns or a key unlocks.
    assert broker.operator_key not in text
    assert "acme" not in text
    assert "oq_nobody" not in text
    services = {s.labels["service"] for s in rpcs}
    assert services <= {*SERVICE_NAMES, health.SERVICE_NAME, "other"}
    codes = {s.labels["code"] for s in rpcs}
    assert codes <= {code.name for code in grpc.StatusCode}


def test_metrics_addresses_default_to_loopback() -> None:
    assert parse_listen("9464") == ("127.0.0.1", 9464)
    assert parse_listen(":9464") == ("127.0.0.1", 9464)
    assert parse_listen("0.0.0.0:9464") == ("0.0.0.0", 9464)
    for bad in ("", "host:", "127.0.0.1:http", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match="use HOST:PORT"):
            parse_listen(bad)


def test_json_log_lines_carry_the_request_id(broker: BrokerHandle, observed: Observed) -> None:
    build_world(broker.broker, satellites=2, hours=1)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    rpc_log = logging.getLogger("orbitq.rpc")
    rpc_log.addHandler(handler)
    previous = rpc_log.level
    rpc_log.setLevel(logging.INFO)
    try:
        with grpc.insecure_channel(observed.target) as channel:
            stub = constellation_pb2_grpc.ConstellationServiceStub(channel)
            auth = ("authorization", f"Bearer {broker.operator_key}")
            _, call = stub.ListNodes.with_call(
                constellation_pb2.ListNodesRequest(),
                metadata=(auth, ("x-request-id", "trace-42")),
            )
            assert ("x-request-id", "trace-42") in tuple(call.trailing_metadata())
            stub.ListNodes(constellation_pb2.ListNodesRequest(), metadata=(auth,))
            # An id that is not a sane token is replaced, never echoed into the logs.
            stub.ListNodes(
                constellation_pb2.ListNodesRequest(),
                metadata=(auth, ("x-request-id", "bad id; with spaces")),
            )
    finally:
        rpc_log.removeHandler(handler)
        rpc_log.setLevel(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    calls = [line for line in lines if "ListNodes" in line["message"]]
    assert len(calls) == 3
    assert calls[0]["request_id"] == "trace-42"
    assert re.fullmatch(r"[0-9a-f]{16}", calls[1]["request_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", calls[2]["request_id"])
    assert all(line["logger"] == "orbitq.rpc" and line["level"] == "INFO" for line in calls)
    assert all("time" in line for line in calls)


def _orbitq(*args: str) -> list[str]:
    return [sys.executable, "-m", "orbitq.clients.cli.main", *args]


def test_orbitq_serve_with_metrics_and_json_logs(tmp_path: Path) -> None:
    data_dir = tmp_path / "broker"
    init = subprocess.run(
        _orbitq("init", "--data-dir", str(data_dir), "--origin", "test.orbitq/ledger", "--json"),
        capture_output=True,
        text=True,
        check=True,
    )
    operator_key = json.loads(init.stdout)["operator_api_key"]
    log_path = tmp_path / "broker.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            _orbitq(
                "serve",
                "--data-dir",
                str(data_dir),
                "--listen",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert server.stdout is not None
            target = server.stdout.readline().strip().rsplit(" ", 1)[-1]
            metrics_line = server.stdout.readline().strip()
            assert metrics_line.startswith("orbitq metrics on http://127.0.0.1:")
            url = metrics_line.rsplit(" ", 1)[-1]
            with BrokerClient(target, operator_key, timeout=30) as admin:
                admin.list_nodes()
            _, families = Observed(target, url).scrape()
            assert families.keys() >= FAMILIES - {"orbitq_ledger_checkpoint_age_seconds"}
            rpcs = families["orbitq_rpc_requests"]
            assert (
                value(
                    rpcs,
                    "orbitq_rpc_requests_total",
                    service=CONSTELLATION,
                    method="ListNodes",
                    code="OK",
                )
                == 1
            )
        finally:
            server.send_signal(signal.SIGTERM)
            assert server.wait(30) == 0
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert lines, "the broker logged nothing"
    listed = [line for line in lines if "ListNodes" in line["message"]]
    assert len(listed) == 1
    assert re.fullmatch(r"[0-9a-f]{16}", listed[0]["request_id"])
