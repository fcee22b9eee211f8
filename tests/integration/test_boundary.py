"""Issue 12's boundary findings, each on a real server on loopback (SQLite and PostgreSQL):
bytes that do not decode, numbers no column holds, forged page tokens and a reflection stream
whose client goes away are refused precisely (INVALID_ARGUMENT naming the field, or quietly),
never INTERNAL, and never with a traceback in the server's log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_reflection.v1alpha import reflection_pb2

from orbitq.services import pagination
from orbitq.services.constellation.plan import ContactQuery
from orbitq.services.errors import InvalidArgumentError
from orbitq.services.quota import TransferFilter
from orbitq.v1 import admin_pb2, common_pb2, constellation_pb2, quota_pb2, request_pb2
from tests.conftest import ServerHandle

BAD_UTF8 = b"\xed\xa0\x80"  # a lone surrogate (U+D800) as CESU bytes: not UTF-8
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
TIMEOUT = 10.0


def _raw(channel: grpc.Channel, path: str, payload: bytes, key: str | None) -> grpc.RpcError:
    """Send `payload` as the request of unary method `path`; the error it must end in."""
    call = channel.unary_unary(path, lambda raw: raw, lambda raw: raw)
    metadata = (("authorization", f"Bearer {key}"),) if key else None
    with pytest.raises(grpc.RpcError) as refused:
        call(payload, timeout=TIMEOUT, metadata=metadata)
    return refused.value


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited field (numbers below 16, lengths below 128)."""
    assert number < 16
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [r for r in caplog.records if r.exc_info or "deserializ" in r.getMessage().lower()]
    assert noisy == [], [r.getMessage() for r in noisy]
    assert not [r for r in caplog.records if "internal error" in r.getMessage()]


def test_invalid_utf8_is_refused_naming_the_field(
    server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    spec = _field(1, BAD_UTF8)  # RequestSpec.name
    label = _field(11, _field(1, b"ok") + _field(2, BAD_UTF8))  # RequestSpec.node_labels value
    cases = [
        ("/orbitq.v1.AdminService/CreateTenant", _field(1, BAD_UTF8), "name"),
        ("/orbitq.v1.QuotaService/Mint", _field(1, b"\xff"), "tenant"),
        ("/orbitq.v1.RequestService/Submit", _field(1, spec), "spec.name"),
        ("/orbitq.v1.RequestService/Quote", _field(1, label), "spec.node_labels.value"),
        ("/grpc.health.v1.Health/Check", _field(1, BAD_UTF8), "service"),
    ]
    assert admin_pb2.CreateTenantRequest.DESCRIPTOR.fields_by_number[1].name == "name"
    assert request_pb2.RequestSpec.DESCRIPTOR.fields_by_number[11].name == "node_labels"
    with grpc.insecure_channel(server.target) as channel:
        for path, payload, field in cases:
            for key in (server.operator_key, None):
                error = _raw(channel, path, payload, key)
                assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (path, error.details())
                assert f"field {field} is not valid UTF-8" in (error.details() or ""), path
        # A truncated message blames the field whose length runs past the end.
        error = _raw(channel, "/orbitq.v1.QuotaService/Mint", b"\x0a\x05ab", None)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "field tenant is truncated" in (error.details() or "")
    _no_traceback(caplog)


def test_invalid_utf8_in_a_reflection_stream(
    server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bad = _field(3, BAD_UTF8)  # ServerReflectionRequest.file_by_filename
    good = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    with grpc.insecure_channel(server.target) as channel:
        stream = channel.stream_stream(REFLECTION, lambda raw: raw, lambda raw: raw)
        replies = iter(stream(iter([good, bad]), timeout=TIMEOUT))
        first = reflection_pb2.ServerReflectionResponse.FromString(next(replies))
        assert first.list_services_response.service
        with pytest.raises(grpc.RpcError) as refused:
            next(replies)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "field file_by_filename is not valid UTF-8" in (refused.value.details() or "")
    _no_traceback(caplog)


def test_a_reflection_stream_whose_client_leaves_is_no_incident(
    server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    leave = threading.Event()

    def requests() -> Iterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        leave.wait(TIMEOUT)

    with grpc.insecure_channel(server.target) as channel:
        stream = channel.stream_stream(
            REFLECTION,
            reflection_pb2.ServerReflectionRequest.SerializeToString,
            reflection_pb2.ServerReflectionResponse.FromString,
        )
        call = stream(requests(), timeout=TIMEOUT)
        assert next(iter(call)).list_services_response.service
        call.cancel()  # type: ignore[no-untyped-call]
        leave.set()
        # The server's logging interceptor writes one line when the stream's handler ends.
        deadline = time.monotonic() + TIMEOUT
        while not [r for r in caplog.records if "ServerReflectionInfo" in r.getMessage()]:
            assert time.monotonic() < deadline, "the reflection stream never ended on the server"
            time.sleep(0.02)
    ended = [r.getMessage() for r in caplog.records if "ServerReflectionInfo" in r.getMessage()]
    assert "INTERNAL" not in ended[0]
    _no_traceback(caplog)


def test_numbers_beyond_64_bits_are_refused_naming_the_field(
    server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    huge = 2**64 - 1
    far = 2**62  # seconds: its nanoseconds overflow int64
    cases: list[tuple[str, bytes, str]] = [
        (
            "/orbitq.v1.QuotaService/GetBalances",
            quota_pb2.GetBalancesRequest(tenant="acme", at_timestamp_ns=huge).SerializeToString(),
            "at_timestamp_ns = 18446744073709551615 is above the maximum",
        ),
        (
            "/orbitq.v1.QuotaService/ListTransfers",
            quota_pb2.ListTransfersRequest(account_id=2**63).SerializeToString(),
            "account_id = 9223372036854775808 is above the maximum",
        ),
        (
            "/orbitq.v1.ConstellationService/ListContacts",
            constellation_pb2.ListContactsRequest(
                start=Timestamp(seconds=far), end=Timestamp(seconds=far + 1)
            ).SerializeToString(),
            "start.seconds = 4611686018427387904 is outside",
        ),
        (
            "/orbitq.v1.ConstellationService/ListContacts",
            constellation_pb2.ListContactsRequest(
                start=Timestamp(seconds=1, nanos=-1)
            ).SerializeToString(),
            "start.nanos = -1 is outside",
        ),
        (
            "/orbitq.v1.QuotaService/Mint",
            quota_pb2.MintRequest(
                tenant="acme", amounts=common_pb2.Amounts(cpu=2**63)
            ).SerializeToString(),
            "amounts.cpu = 9223372036854775808 is above the maximum",
        ),
        (
            "/orbitq.v1.AdminService/CreateTenant",
            admin_pb2.CreateTenantRequest(name="a\x00b").SerializeToString(),
            "name contains a NUL character",
        ),
    ]
    with grpc.insecure_channel(server.target) as channel:
        for path, payload, says in cases:
            error = _raw(channel, path, payload, server.operator_key)
            assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (path, error.details())
            assert says in (error.details() or ""), (path, error.details())
    _no_traceback(caplog)


def _forged(position: object, query: object) -> str:
    # A token with the right fingerprint and a position the broker never made.
    return pagination.encode_token(position, query)


def test_page_tokens_of_every_list_are_checked(
    server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    transfers = TransferFilter()
    contacts = ContactQuery()
    requests: dict[str, object] = {"requests": None, "states": []}
    nodes: dict[str, object] = {"labels": {}, "state": None}
    # Wrong for every list (each takes a number, a text, or [number, text]).
    bad_positions: list[object] = [
        2**64, -(2**63) - 1, 1.5, None, {"a": 1}, ["x", 1], [1, "x", 2], True, "\ud800", "a\x00"
    ]  # fmt: skip
    # Per list: its query's fingerprint, and a position of a type it does not take.
    cases = [
        ("/orbitq.v1.QuotaService/ListTransfers", quota_pb2.ListTransfersRequest, transfers,
         "abc"),
        ("/orbitq.v1.ConstellationService/ListContacts", constellation_pb2.ListContactsRequest,
         contacts, 5),
        ("/orbitq.v1.RequestService/ListRequests", request_pb2.ListRequestsRequest, requests,
         "99999999999999999999"),
        ("/orbitq.v1.ConstellationService/ListNodes", constellation_pb2.ListNodesRequest, nodes,
         "abc"),
        ("/orbitq.v1.ConstellationService/ListStations", constellation_pb2.ListStationsRequest,
         "stations", 5),
        ("/orbitq.v1.AdminService/ListTenants", admin_pb2.ListTenantsRequest, "tenants", 5),
    ]  # fmt: skip
    with grpc.insecure_channel(server.target) as channel:
        for path, kind, query, wrong in cases:
            positions = [*bad_positions, wrong]
            for token in ("abc", "!!", "e30", *(_forged(p, query) for p in positions)):
                error = _raw(
                    channel, path, kind(page_token=token).SerializeToString(), server.operator_key
                )
                assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (path, token)
                assert "page_token" in (error.details() or ""), (path, error.details())
    _no_traceback(caplog)


def test_decode_token_checks_shape_and_range() -> None:
    token = pagination.encode_token([5, "x"], "q")
    assert pagination.decode_token(token, "q", (pagination.INT, pagination.TEXT)) == [5, "x"]
    for position, shape in (
        ([5, "x"], pagination.INT),
        ("5", pagination.INT),
        (5, pagination.TEXT),
        (True, pagination.INT),
        (2**63, pagination.INT),
        ([5], (pagination.INT, pagination.TEXT)),
        (["5", "x"], (pagination.INT, pagination.TEXT)),
        ([[5], "x"], None),
        (2**63, None),
    ):
        with pytest.raises(InvalidArgumentError, match="malformed page_token"):
            pagination.decode_token(pagination.encode_token(position, "q"), "q", shape)
    assert pagination.decode_token(pagination.encode_token(-(2**63), "q"), "q") == -(2**63)
