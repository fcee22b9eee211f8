"""Protobuf <-> domain conversions shared by the servicers, with shape validation.

Owns: checking wire fields a client controls (id lengths, byte sizes, enum values) and turning
ledger records into messages. Raises InvalidArgumentError naming the field.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from orbitq.ledger.entries import transfer_from_proto, transfer_to_proto
from orbitq.ledger.model import (
    ID_BYTES,
    USER_DATA_BYTES_MAX,
    Account,
    AccountFlag,
    Kind,
    Outcome,
    Transfer,
    id_from_bytes,
)
from orbitq.services.clock import from_ns
from orbitq.services.errors import InvalidArgumentError
from orbitq.v1 import common_pb2, quota_pb2


def timestamp(ns: int) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(from_ns(ns))
    return message


def operation_id(raw: bytes, field: str) -> int | None:
    """A client-chosen 16-byte id, or None when the field is empty."""
    if not raw:
        return None
    if len(raw) != ID_BYTES:
        raise InvalidArgumentError(f"{field} must be {ID_BYTES} bytes, got {len(raw)}")
    value = id_from_bytes(raw)
    if value in (0, 2**128 - 1):
        raise InvalidArgumentError(f"{field} must not be 0 or 2^128-1 (reserved)")
    return value


def amounts(message: common_pb2.Amounts) -> dict[Kind, int]:
    return {Kind.CPU: message.cpu, Kind.STORAGE: message.storage, Kind.LINK: message.link}


def kind(value: int, field: str) -> Kind | None:
    if value == 0:
        return None
    try:
        return Kind(value)
    except ValueError:
        raise InvalidArgumentError(f"{field}: unknown resource kind {value}") from None


def account_to_proto(account: Account) -> quota_pb2.Account:
    return quota_pb2.Account(
        id=account.id,
        kind=int(account.kind),  # type: ignore[arg-type]
        tenant=account.tenant or "",
        system=int(account.system or 0),  # type: ignore[arg-type]
        debits_pending=account.debits_pending,
        debits_posted=account.debits_posted,
        credits_pending=account.credits_pending,
        credits_posted=account.credits_posted,
        available=account.available,
        debits_must_not_exceed_credits=bool(
            account.flags & AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS
        ),
        timestamp_ns=account.timestamp_ns,
    )


def outcome_to_proto(outcome: Outcome) -> quota_pb2.TransferOutcome:
    message = quota_pb2.TransferOutcome(
        index=outcome.index,
        result=int(outcome.result),  # type: ignore[arg-type]
    )
    if outcome.original_result is not None:
        message.original_result = int(outcome.original_result)  # type: ignore[assignment]
    if outcome.stored is not None:
        message.transfer.CopyFrom(transfer_to_proto(outcome.stored.transfer))
    return message


def transfers_from_request(messages: list[quota_pb2.Transfer]) -> list[Transfer]:
    """Wire transfers to domain ones. Shape errors (lengths) are INVALID_ARGUMENT for the whole
    call; every rule about values is a per-transfer result from the ledger."""
    transfers = []
    for index, message in enumerate(messages):
        if len(message.id) != ID_BYTES:
            raise InvalidArgumentError(
                f"transfers[{index}].id must be {ID_BYTES} bytes, got {len(message.id)}"
            )
        if message.pending_id and len(message.pending_id) != ID_BYTES:
            raise InvalidArgumentError(
                f"transfers[{index}].pending_id must be empty or {ID_BYTES} bytes"
            )
        if len(message.user_data) > USER_DATA_BYTES_MAX:
            raise InvalidArgumentError(
                f"transfers[{index}].user_data is {len(message.user_data)} bytes;"
                f" at most {USER_DATA_BYTES_MAX}"
            )
        transfers.append(transfer_from_proto(message))
    return transfers


__all__ = [
    "account_to_proto",
    "amounts",
    "kind",
    "operation_id",
    "outcome_to_proto",
    "timestamp",
    "transfer_to_proto",
    "transfers_from_request",
]
