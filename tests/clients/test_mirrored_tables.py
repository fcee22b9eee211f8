"""Tables written twice, on the two sides of the wire, are checked against each other.

- the status codes: the broker chooses one per domain error (orbitq.services.interceptors
  STATUS_OF); the SDK raises one exception per status (orbitq.clients.errors ERROR_OF_STATUS);
- the enums: the ledger's and the services' Python enums against the proto enums they mirror
  (names and numbers, both ways), and the SDK's label tables against the same proto enums.

Tests may import the server; the SDK itself never does (test_server_surface checks that).
"""

from __future__ import annotations

import enum

import grpc
import pytest
from google.protobuf.descriptor import EnumDescriptor

from orbitq.clients import _calls, models
from orbitq.clients.errors import ERROR_OF_STATUS
from orbitq.ledger.model import Code, Kind, Result, SystemAccount, TransferFlag
from orbitq.services import errors as domain
from orbitq.services.constellation import NODE_STATES
from orbitq.services.identity.api_keys import Role
from orbitq.services.interceptors import STATUS_OF
from orbitq.services.orbits import ELEMENT_FORMATS
from orbitq.services.requests import TERMINAL_STATES, RequestState
from orbitq.v1 import common_pb2, constellation_pb2, quota_pb2, request_pb2

# -- status codes ------------------------------------------------------------------------------

# Statuses the broker sets outside STATUS_OF (orbitq.services.interceptors.abort_for): the
# ledger busy past the call's wait, and any unexpected exception (with an incident id).
SERVER_STATUSES_BESIDES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL}
# Statuses gRPC itself produces on the client's side of a call: no connection, the timeout,
# a cancelled call, a method the broker lacks, a message over the size limit, a broken stream.
TRANSPORT_STATUSES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
}


# Statuses the SDK folds into the exception of another (errors.py's tree says which).
FOLDED = {
    grpc.StatusCode.OUT_OF_RANGE: "InvalidArgumentError",
    grpc.StatusCode.ABORTED: "FailedPreconditionError",
    grpc.StatusCode.CANCELLED: "UnavailableError",
    grpc.StatusCode.UNKNOWN: "InternalError",
    grpc.StatusCode.DATA_LOSS: "InternalError",
}


def named_for(code: grpc.StatusCode) -> str:
    """The SDK exception of a status: the one named after it (INVALID_ARGUMENT ->
    InvalidArgumentError), or the one it is folded into."""
    return FOLDED.get(code) or "".join(w.capitalize() for w in code.name.split("_")) + "Error"


def domain_errors() -> list[type[domain.BrokerError]]:
    found, todo = [], [domain.BrokerError]
    while todo:
        for subclass in todo.pop().__subclasses__():
            if subclass.__module__.startswith("orbitq.services."):
                found.append(subclass)
                todo.append(subclass)
    return found


def status_of(error: type[Exception]) -> grpc.StatusCode | None:
    """The status the broker aborts with for `error` (the first class of its MRO in the table)."""
    return next((STATUS_OF[kind] for kind in error.__mro__ if kind in STATUS_OF), None)


def test_every_domain_error_has_a_status() -> None:
    assert len(domain_errors()) >= 8
    unmapped = [error.__name__ for error in domain_errors() if status_of(error) is None]
    assert not unmapped, f"domain errors the broker would report as INTERNAL: {unmapped}"


@pytest.mark.parametrize("error", list(STATUS_OF), ids=lambda error: error.__name__)
def test_every_status_of_the_table_raises_the_sdk_exception_named_for_it(
    error: type[Exception],
) -> None:
    code = STATUS_OF[error]
    raised = ERROR_OF_STATUS[code]
    assert raised.__name__ == named_for(code)
    if issubclass(error, domain.BrokerError):
        # One vocabulary on both sides: the broker's InvalidArgumentError is the SDK's.
        assert raised.__name__ == error.__name__


@pytest.mark.parametrize(
    "code",
    sorted(SERVER_STATUSES_BESIDES | TRANSPORT_STATUSES, key=str),
    ids=str,
)
def test_every_status_outside_the_table_has_its_sdk_exception(code: grpc.StatusCode) -> None:
    assert ERROR_OF_STATUS[code].__name__ == named_for(code)


def test_the_sdk_maps_every_status_but_ok() -> None:
    assert set(ERROR_OF_STATUS) == set(grpc.StatusCode) - {grpc.StatusCode.OK}
    for code, raised in ERROR_OF_STATUS.items():
        assert raised.__name__ == named_for(code), code


# -- enums -------------------------------------------------------------------------------------


def proto_enum(descriptor: EnumDescriptor, prefix: str) -> dict[str, int]:
    """A proto enum's values by name without its prefix, UNSPECIFIED (0) left out."""
    values = {value.name.removeprefix(prefix): value.number for value in descriptor.values}
    assert values.pop("UNSPECIFIED") == 0
    return values


def proto_labels(descriptor: EnumDescriptor, prefix: str) -> list[str]:
    """A proto enum's names as the CLI and SDK spell them (omm-csv), in the order of numbers."""
    values = proto_enum(descriptor, prefix)
    return [name.lower().replace("_", "-") for name in sorted(values, key=values.__getitem__)]


@pytest.mark.parametrize(
    ("mirror", "descriptor", "prefix"),
    [
        (Kind, common_pb2.ResourceKind.DESCRIPTOR, "RESOURCE_KIND_"),
        (SystemAccount, quota_pb2.SystemAccount.DESCRIPTOR, "SYSTEM_ACCOUNT_"),
        (Code, quota_pb2.TransferCode.DESCRIPTOR, "TRANSFER_CODE_"),
        (Result, quota_pb2.CreateTransferResult.DESCRIPTOR, "CREATE_TRANSFER_RESULT_"),
        (RequestState, request_pb2.RequestState.DESCRIPTOR, "REQUEST_STATE_"),
    ],
    ids=["Kind", "SystemAccount", "Code", "Result", "RequestState"],
)
def test_python_enums_equal_their_proto_enums(
    mirror: type[enum.IntEnum], descriptor: EnumDescriptor, prefix: str
) -> None:
    assert {member.name: member.value for member in mirror} == proto_enum(descriptor, prefix)


def test_roles_equal_the_proto_roles() -> None:
    labels = proto_labels(common_pb2.Role.DESCRIPTOR, "ROLE_")
    assert [role.value for role in Role] == labels
    assert list(_calls._ROLES) == labels  # the SDK's table of issue_api_key's role argument
    for label, value in _calls._ROLES.items():
        assert value == common_pb2.Role.Value(f"ROLE_{label.upper()}")


def test_node_states_equal_the_proto_node_states() -> None:
    labels = proto_labels(constellation_pb2.NodeState.DESCRIPTOR, "NODE_STATE_")
    assert list(NODE_STATES) == labels
    assert list(models.NODE_STATES) == labels


def test_element_formats_equal_the_proto_element_formats() -> None:
    labels = proto_labels(constellation_pb2.ElementFormat.DESCRIPTOR, "ELEMENT_FORMAT_")
    assert list(ELEMENT_FORMATS) == labels
    assert list(_calls._ELEMENT_FORMATS) == labels  # the SDK's table of import_nodes' fmt
    for label, value in _calls._ELEMENT_FORMATS.items():
        name = "ELEMENT_FORMAT_" + label.upper().replace("-", "_")
        assert value == constellation_pb2.ElementFormat.Value(name)


def test_request_states_and_terminal_states_equal_the_servers() -> None:
    labels = proto_labels(request_pb2.RequestState.DESCRIPTOR, "REQUEST_STATE_")
    assert list(models.REQUEST_STATES) == labels
    # watch_request stops at a terminal transition: the SDK's terminal states are the broker's.
    assert {state.label for state in TERMINAL_STATES} == models.TERMINAL_REQUEST_STATES


def test_transfer_flags_equal_the_proto_transfer_flags() -> None:
    fields = [field.name for field in quota_pb2.TransferFlags.DESCRIPTOR.fields]
    assert [str(flag.name).lower() for flag in TransferFlag] == fields
