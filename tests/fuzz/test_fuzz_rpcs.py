"""Every method of every service the broker serves, fuzzed on a real server on loopback.

The methods are read from the descriptors (the orbitq.v1 services, health and reflection), so
a new RPC is fuzzed without a line here. Each gets hypothesis-drawn messages (tests/fuzz/
messages.py) and the hostile cases of each of its fields (bad UTF-8, 0, -1, 2^63 - 1, 2^64 - 1,
empty and 100 KB strings, malformed ids, unknown enum values, huge repeated fields), sent as
operator, tenant, node and without a key. Nothing may answer INTERNAL or UNKNOWN, nothing may
hang past its deadline, and the server's log may hold no traceback. A fixed example count
keeps it to a few tens of seconds per database; the calls per method are printed.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import orbitq.v1
from orbitq.services.auth import SYSTEM
from orbitq.services.identity.api_keys import Role
from tests.conftest import ServerHandle
from tests.fuzz.messages import hostile, messages
from tests.requests.sky import add_tenant, build_world

# Drawn messages per method and caller (hostile cases come on top, every one for every caller).
EXAMPLES = 6
DEADLINE_SECONDS = 10.0
Check = Callable[[str, MethodDescriptor, bytes, str], None]
BAD_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


def served_methods() -> dict[str, MethodDescriptor]:
    """Every method the broker serves, by path: the orbitq.v1 services, health, reflection."""
    modules = [
        importlib.import_module(f"orbitq.v1.{info.name}")
        for info in pkgutil.iter_modules(orbitq.v1.__path__)
        if info.name.endswith("_pb2")
    ]
    methods = {}
    for module in (*modules, health_pb2, reflection_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                methods[f"/{service.full_name}/{method.name}"] = method
    return methods


@dataclass
class Outcome:
    calls: Counter[str]
    codes: Counter[tuple[str, str]]
    bad: list[str]


def _identity(raw: bytes) -> bytes:
    return raw


def _send(
    channel: grpc.Channel, path: str, method: MethodDescriptor, payload: bytes, key: str | None
) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {key}"),) if key else None
    try:
        if method.client_streaming:
            call = channel.stream_stream(path, _identity, _identity)(
                iter([payload]), timeout=DEADLINE_SECONDS, metadata=metadata
            )
            _first(call)
        elif method.server_streaming:
            call = channel.unary_stream(path, _identity, _identity)(
                payload, timeout=DEADLINE_SECONDS, metadata=metadata
            )
            _first(call)
        else:
            channel.unary_unary(path, _identity, _identity)(
                payload, timeout=DEADLINE_SECONDS, metadata=metadata
            )
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


def _first(call: Any) -> None:
    """A stream's first answer (or its end), then the call is cancelled: long-lived streams
    (watches) are not waited out, their first answer shows the request was handled."""
    try:
        next(iter(call), None)
    finally:
        call.cancel()


def _keys(server: ServerHandle) -> dict[str, str | None]:
    broker = server.broker
    build_world(broker, satellites=2, hours=2)
    add_tenant(broker, "acme")
    node = next(iter(broker.constellation.nodes())).id
    return {
        "operator": server.operator_key,
        "tenant": broker.tenants.issue_key(SYSTEM, Role.TENANT, "acme", "", "fuzz").token,
        "node": broker.tenants.issue_key(SYSTEM, Role.NODE, "", node, "fuzz").token,
        "no key": None,
    }


def fuzz(server: ServerHandle) -> Outcome:
    outcome = Outcome(Counter(), Counter(), [])
    keys = _keys(server)
    with grpc.insecure_channel(
        server.target,
        options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
    ) as channel:

        def check(path: str, method: MethodDescriptor, payload: bytes, what: str) -> None:
            for caller, key in keys.items():
                code = _send(channel, path, method, payload, key)
                outcome.calls[path] += 1
                outcome.codes[(path, code.name)] += 1
                if code in BAD_CODES or code is grpc.StatusCode.DEADLINE_EXCEEDED:
                    outcome.bad.append(f"{path} by {caller}: {code.name} for {what}")

        for path, method in sorted(served_methods().items()):
            for what, payload in hostile(method.input_type):
                check(path, method, payload, what)

            _drawn(check, path, method)()
    return outcome


def _drawn(check: Check, path: str, method: MethodDescriptor) -> Callable[[], None]:
    """EXAMPLES hypothesis-drawn requests of `method`, each checked (failures are collected,
    not raised, so one run reports every method's)."""

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def drawn(data: st.DataObject) -> None:
        message = data.draw(messages(method.input_type), label="request")
        check(path, method, message.SerializeToString(), f"drawn {message!r:.300}")

    return drawn


def test_no_request_to_any_rpc_is_an_internal_error(
    server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    outcome = fuzz(server)
    methods = served_methods()
    assert set(outcome.calls) == set(methods), "a method was not fuzzed"
    print(f"\nfuzz: {sum(outcome.calls.values())} calls over {len(methods)} methods")
    for path, count in sorted(outcome.calls.items()):
        codes = ", ".join(
            f"{code} {n}" for (p, code), n in sorted(outcome.codes.items()) if p == path
        )
        print(f"  {path}: {count} calls ({codes})")
    assert outcome.bad == []
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
    assert tracebacks == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
