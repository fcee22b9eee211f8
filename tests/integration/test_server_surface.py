"""The broker's surface as generic tools and operators see it: reflection lists every method of
the six services, TLS works with the SDK, SIGTERM stops `orbitq serve` cleanly, and importing
the SDK does not drag in the server."""

from __future__ import annotations

import datetime as dt
import gc
import ipaddress
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from orbitq.clients import BrokerClient, TLSConfig, UnavailableError
from orbitq.services.demo.process import running_broker
from orbitq.services.server import SERVICE_NAMES, build_server, freeze_startup_heap
from orbitq.v1 import (
    admin_pb2,
    agent_pb2,
    constellation_pb2,
    ledger_pb2,
    quota_pb2,
    request_pb2,
)
from tests.conftest import BrokerHandle, ServerHandle

EXPECTED_METHODS = {
    "orbitq.v1.AdminService": {"CreateTenant", "ListTenants", "IssueApiKey", "RevokeApiKey"},
    "orbitq.v1.QuotaService": {
        "Mint",
        "GetBalances",
        "Transfer",
        "ListTransfers",
        "CreateTransfers",
        "GrantBudget",
        "ListBudgets",
        "GetUsageReport",
    },
    "orbitq.v1.RequestService": {
        "Quote",
        "Submit",
        "GetRequest",
        "ListRequests",
        "CancelRequest",
        "WatchRequest",
    },
    "orbitq.v1.ConstellationService": {
        "ImportNodes",
        "ListNodes",
        "SetNodeState",
        "UpsertStation",
        "ListStations",
        "ListContacts",
    },
    "orbitq.v1.NodeAgentService": {"EnrollNode", "PullTickets", "ReportReceipt", "Heartbeat"},
    "orbitq.v1.LedgerService": {
        "GetCheckpoint",
        "GetEntries",
        "GetInclusionProof",
        "GetConsistencyProof",
        "GetPublicKey",
    },
}


# Methods the contract adds to the brief's, each named here on purpose: the node agents'
# blobs, results and enrollment, the tenant's workloads, inputs, results and evidence, and
# booked contact plans from ground networks.
ADDED_METHODS = {
    "orbitq.v1.RequestService": {
        "PushWorkload",
        "PushInput",
        "GetBlob",
        "GetEvidence",
        "ExplainRequest",
    },
    "orbitq.v1.ConstellationService": {"CreateEnrollmentToken", "ImportContactPlan"},
    "orbitq.v1.NodeAgentService": {"FetchBlob", "OpenResult", "PutResultChunk"},
}

# Services the broker declares but does not build yet (none: every service is served).
UNBUILT: set[str] = set()


def _declared() -> dict[str, set[str]]:
    declared = {}
    for module in (admin_pb2, quota_pb2, request_pb2, constellation_pb2, agent_pb2, ledger_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            declared[service.full_name] = {method.name for method in service.methods}
    return declared


def test_the_contract_declares_every_method_of_the_brief() -> None:
    declared = _declared()
    assert set(declared) == set(EXPECTED_METHODS)
    for service, methods in EXPECTED_METHODS.items():
        assert declared[service] - methods == ADDED_METHODS.get(service, set()), service
        assert methods <= declared[service], service
    assert set(SERVICE_NAMES) == set(EXPECTED_METHODS)


def test_reflection_lists_every_method_and_health_serves(server: ServerHandle) -> None:
    with grpc.insecure_channel(server.target) as channel:
        pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        for service, methods in _declared().items():
            descriptor = pool.FindServiceByName(service)
            assert {method.name for method in descriptor.methods} == methods
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", *(name for name in EXPECTED_METHODS if name not in UNBUILT)):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_health_knows_only_the_services_the_broker_answers(server: ServerHandle) -> None:
    """A declared service with no servicer answers UNIMPLEMENTED; health must not call it
    SERVING. The health protocol's word for a service the server does not have is NOT_FOUND
    (Check) and SERVICE_UNKNOWN (Watch); NOT_SERVING would say it exists and is down."""
    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name, methods in EXPECTED_METHODS.items():
            # Its first method, without credentials and with an empty message (raw bytes): a
            # registered service refuses (UNAUTHENTICATED), a missing one is UNIMPLEMENTED.
            method = channel.unary_unary(f"/{name}/{min(methods)}", None, None)
            with pytest.raises(grpc.RpcError) as called:
                method(b"", timeout=5)
            answered = called.value.code() is not grpc.StatusCode.UNIMPLEMENTED
            assert answered == (name not in UNBUILT), name
            request = health_pb2.HealthCheckRequest(service=name)
            if answered:
                reply = health.Check(request, timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
                continue
            with pytest.raises(grpc.RpcError) as checked:
                health.Check(request, timeout=5)
            assert checked.value.code() is grpc.StatusCode.NOT_FOUND
            watch = health.Watch(request, timeout=5)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
            watch.cancel()


def _self_signed(directory: Path) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orbitq test broker")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (directory / "cert.pem").write_bytes(cert_pem)
    return cert_pem, key_pem


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_tls_between_sdk_and_broker(broker: BrokerHandle, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    running = build_server(broker.broker, "127.0.0.1:0", tls=(cert, key))
    try:
        target = f"127.0.0.1:{running.port}"
        tls = TLSConfig.from_ca_file(tmp_path / "cert.pem", server_name="localhost")
        with BrokerClient(target, broker.operator_key, tls=tls) as client:
            client.create_tenant("secure")
            assert [t.name for t in client.list_tenants().items] == ["secure"]
        # A client that does not speak TLS cannot talk to it.
        with (
            BrokerClient(target, broker.operator_key, timeout=2) as plain,
            pytest.raises(UnavailableError),
        ):
            plain.list_tenants()
    finally:
        running.stop(grace=1.0)


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with running_broker(tmp_path) as broker:
        with BrokerClient(broker.target, broker.operator_key) as client:
            client.create_tenant("before-stop")
        process_target = broker.target
    assert broker.exit_code == 0
    with (
        BrokerClient(process_target, broker.operator_key, timeout=2) as client,
        pytest.raises(UnavailableError),
    ):
        client.list_tenants()


def test_importing_the_sdk_does_not_import_the_server() -> None:
    code = (
        "import sys, orbitq.clients, orbitq.clients.cli.main\n"
        "bad = [m for m in sys.modules if m.startswith(('orbitq.services', 'sqlmodel',"
        " 'sqlalchemy', 'alembic', 'apscheduler', 'sgp4'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_startup_heap_is_frozen_out_of_the_collectors_walks(server: ServerHandle) -> None:
    """What a serving broker holds is out of the cyclic collector's walks; objects made later
    are still collected (a cycle made after the freeze is found)."""
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > 0
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()  # the test process's heap goes back to the collector
