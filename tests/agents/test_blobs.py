"""Workloads, inputs and the checks of Submit over a real broker on loopback (SQLite and
PostgreSQL): only valid WASI modules are stored (the binary header checked before wasmtime
sees the bytes), blobs are the pushing tenant's, Submit names modules and inputs the tenant
pushed, within input_mb; results are deleted after their retention."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import grpc
import pytest
import wasmtime

from orbitq.services.auth import SYSTEM
from orbitq.services.blobs.store import BlobStore, Limits
from orbitq.services.clock import SimulatedClock
from orbitq.services.errors import (
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
)
from orbitq.services.identity.api_keys import Role
from orbitq.services.requests import RequestState
from orbitq.v1 import request_pb2, request_pb2_grpc
from tests.agents.support import HELLO_WAT, agent_world, module_bytes
from tests.conftest import ServerHandle
from tests.requests.sky import add_tenant, spec, tenant

S = RequestState
HOST_IMPORT_WAT = """
(module
  (import "env" "host_time" (func (result i64)))
  (memory (export "memory") 1)
  (func (export "_start")))
"""
NO_START_WAT = '(module (memory (export "memory") 1))'
NO_IMPORTS_WAT = '(module (memory (export "memory") 1) (func (export "_start")))'


def test_only_valid_wasi_modules_are_stored(server: ServerHandle, clock: SimulatedClock) -> None:
    with agent_world(server, clock) as world:
        acme_key = world.broker.tenants.issue_key(SYSTEM, Role.TENANT, "acme", "", "t").token
        metadata = (("authorization", f"Bearer {acme_key}"),)
        stub = request_pb2_grpc.RequestServiceStub(world.channel)
        module = module_bytes()
        pushed = stub.PushWorkload(
            request_pb2.PushWorkloadRequest(module=module), metadata=metadata
        )
        assert pushed.digest == "sha256:" + hashlib.sha256(module).hexdigest()
        assert not pushed.created  # agent_world pushed it already
        assert list(pushed.imports) == ["proc_exit"]
        cases = {
            "WAT text (wasmtime would compile it)": HELLO_WAT.encode(),
            "not wasm": b"hello world",
            "truncated": module[:12],
            "a host import": bytes(wasmtime.wat2wasm(HOST_IMPORT_WAT)),
            "no _start": bytes(wasmtime.wat2wasm(NO_START_WAT)),
            "too large": b"\x00asm\x01\x00\x00\x00" + bytes(8 * 1024 * 1024),
            "empty": b"",
        }
        for what, data in cases.items():
            with pytest.raises(grpc.RpcError) as refused:
                stub.PushWorkload(request_pb2.PushWorkloadRequest(module=data), metadata=metadata)
            assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, what
        message = ""
        try:
            stub.PushWorkload(
                request_pb2.PushWorkloadRequest(module=bytes(wasmtime.wat2wasm(HOST_IMPORT_WAT))),
                metadata=metadata,
            )
        except grpc.RpcError as error:
            message = error.details() or ""
        assert "import env.host_time is outside wasi_snapshot_preview1" in message
        # The tenant reads its module back in pieces; another tenant cannot see it.
        first = stub.GetBlob(
            request_pb2.GetBlobRequest(digest=pushed.digest, max_bytes=8), metadata=metadata
        )
        rest = stub.GetBlob(
            request_pb2.GetBlobRequest(digest=pushed.digest, offset=8), metadata=metadata
        )
        assert (first.total_bytes, first.data + rest.data) == (len(module), module)
        add_tenant(world.broker, "globex")
        with pytest.raises(NotFoundError):
            world.broker.blobs.get(tenant("globex"), pushed.digest, 0, 0)


def test_submit_names_the_tenant_s_module_and_input(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        broker = world.broker
        globex = add_tenant(broker, "globex")
        acme = tenant("acme")
        theirs = broker.blobs.push_workload(globex, module_bytes(NO_IMPORTS_WAT), "")
        data = bytes(1_500_000)
        pushed = broker.blobs.push_input(acme, data, "")
        assert pushed.digest == "sha256:" + hashlib.sha256(data).hexdigest()
        base = replace(spec(), workload=world.workload)
        refusals = {
            "opaque workload": (replace(base, workload="image:v1"), InvalidArgumentError),
            "unknown module": (replace(base, workload="sha256:" + "0" * 64), NotFoundError),
            "another tenant's module": (replace(base, workload=theirs.digest), NotFoundError),
            "unknown input": (replace(base, input="sha256:" + "1" * 64, input_mb=2), NotFoundError),
            "input over input_mb": (
                replace(base, input=pushed.digest, input_mb=1),
                InvalidArgumentError,
            ),
            "malformed input": (
                replace(base, input="sha256:xyz", input_mb=2),
                InvalidArgumentError,
            ),
        }
        for what, (bad, error) in refusals.items():
            with pytest.raises(error):
                broker.requests.submit(acme, bad, what)
        stored, created = broker.requests.submit(
            acme, replace(base, input=pushed.digest, input_mb=2)
        )
        assert created
        assert stored.spec.input == pushed.digest
        assert stored.state is S.PENDING


def test_the_store_s_limits_and_the_retention_of_results(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        broker = world.broker
        small = BlobStore(
            broker.engine, broker.blob_store.files, Limits(10**9, 2_000), broker.now_ns
        )
        small.put(bytes(1_000), kind="input", tenant="acme", ref="acme")
        with pytest.raises(ResourceExhaustedError):
            small.put(b"x" * 1_500, kind="input", tenant="acme", ref="acme")
        full = BlobStore(broker.engine, broker.blob_store.files, Limits(1, 10**9), broker.now_ns)
        with pytest.raises(ResourceExhaustedError):
            full.put(b"y" * 10, kind="input", tenant="acme", ref="acme")
        # A result is kept its retention after its request ended, then deleted.
        request, envelope, ticket = world.running(output_mb=1)
        result = b"the result"
        world.agent.upload(request.id, result)
        world.finish(ticket)
        world.agent.report(world.agent.receipt(envelope, ticket, result=result))
        digest = hashlib.sha256(result).hexdigest()
        assert broker.blob_store.size(digest) == len(result)
        days = broker.config.result_retention_days
        clock.advance(days * 86_400 - 60)
        assert broker.expire_results() == 0
        clock.advance(120)
        assert broker.expire_results() == 1
        assert broker.blob_store.size(digest) is None
        assert not broker.blob_store.files.exists(digest)
        # Modules stay.
        assert broker.blob_store.size(world.workload.removeprefix("sha256:")) is not None
