"""The agent formats' enums mirror their proto enums (names and numbers, both ways), as
tests/clients/test_mirrored_tables.py checks the ledger's: a refusal reason or an outcome
means the same on the wire and in a signed receipt."""

from __future__ import annotations

import enum

import pytest
from google.protobuf.descriptor import EnumDescriptor

from orbitq.ledger.receipts import RunOutcome
from orbitq.ledger.tickets import RefusalReason
from orbitq.v1 import agent_pb2, request_pb2


@pytest.mark.parametrize(
    ("mirror", "descriptor", "prefix"),
    [
        (RefusalReason, agent_pb2.TicketRefusalReason.DESCRIPTOR, "TICKET_REFUSAL_REASON_"),
        (RunOutcome, request_pb2.RunOutcome.DESCRIPTOR, "RUN_OUTCOME_"),
    ],
    ids=["RefusalReason", "RunOutcome"],
)
def test_python_enums_equal_their_proto_enums(
    mirror: type[enum.IntEnum], descriptor: EnumDescriptor, prefix: str
) -> None:
    values = {value.name.removeprefix(prefix): value.number for value in descriptor.values}
    assert values.pop("UNSPECIFIED") == 0
    assert {member.name: member.value for member in mirror} == values
    assert [member.label for member in mirror] == [name.lower() for name in values]  # type: ignore[attr-defined]
