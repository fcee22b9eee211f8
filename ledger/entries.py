"""Leaves of the signed log: account creations, transfers and evidence as `orbitq.v1.LedgerEntry`
bytes.

Owns: turning ledger records into the exact bytes that are hashed (docs/ledger-format.md L1,
E1-E2) and back. Encoding is protobuf's deterministic serialization; decoding never re-encodes
(the stored bytes are what was signed). Also the evidence the log records beside transfers
(E5): a node's enrolled key (`NodeKeyEvidence`) and a node's usage receipt
(`ReceiptEvidence`), with their digests, the key the log dedups them by.

Does not own: hashing (orbitq.ledger.merkle), storage, or what a receipt says
(orbitq.ledger.receipts).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from hashlib import sha256

from orbitq.ledger import _claims
from orbitq.ledger._transfer_wire import transfer_recorded_bytes
from orbitq.ledger.cose import ENVELOPE_BYTES_MAX, PUBLIC_KEY_BYTES
from orbitq.ledger.model import (
    Account,
    AccountFlag,
    Kind,
    Result,
    StoredTransfer,
    SystemAccount,
    Transfer,
    TransferFlag,
    id_from_bytes,
    id_to_bytes,
)
from orbitq.ledger.note import key_id
from orbitq.ledger.receipts import RUNTIME_BYTES_MAX, receipt_digest
from orbitq.ledger.tickets import NODE_BYTES_MAX
from orbitq.v1 import ledger_pb2, quota_pb2

FUEL_PER_CORE_SECOND_MAX = 2**63 - 1
"""E5: a node's enrolled rate fits a signed 64-bit column (the broker allows 10^8..10^11)."""


class EvidenceKind(IntEnum):
    """What a piece of evidence is; the `kind` column of `ledger_evidence`."""

    NODE_KEY = 1
    RECEIPT = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class NodeKeyEvidence:
    """E5: a node's Ed25519 key was enrolled (a `NodeKeyEnrolled` entry): from its entry on,
    the node's receipts are checked against this key and its fuel rate, and no longer against
    any earlier key of the node."""

    node: str
    public_key: bytes
    fuel_per_core_second: int
    runtime: str

    def __post_init__(self) -> None:
        _claims.text("node", self.node, NODE_BYTES_MAX)
        _claims.fixed_bytes("public_key", self.public_key, PUBLIC_KEY_BYTES)
        _claims.uint("fuel_per_core_second", self.fuel_per_core_second, FUEL_PER_CORE_SECOND_MAX)
        if self.fuel_per_core_second == 0:
            raise _claims.ClaimError("fuel_per_core_second", "must be positive")
        _claims.text("runtime", self.runtime, RUNTIME_BYTES_MAX)

    @property
    def kind(self) -> EvidenceKind:
        return EvidenceKind.NODE_KEY

    @property
    def key_id(self) -> bytes:
        """The kid the node's receipts carry (docs/agent-format.md S2, R1)."""
        return key_id(self.node, self.public_key)

    @property
    def request_id(self) -> None:
        return None

    def message(self) -> ledger_pb2.NodeKeyEnrolled:
        return ledger_pb2.NodeKeyEnrolled(
            node=self.node,
            public_key=self.public_key,
            key_id=self.key_id,
            fuel_per_core_second=self.fuel_per_core_second,
            runtime=self.runtime,
        )

    def digest(self) -> bytes:
        """E5: SHA-256 of the deterministic serialization of the NodeKeyEnrolled message."""
        return sha256(self.message().SerializeToString(deterministic=True)).digest()


@dataclass(frozen=True, slots=True)
class ReceiptEvidence:
    """E5: a node's usage receipt was accepted (a `ReceiptRecorded` entry); the transfers
    that settle the request against it follow it in the log with its digest as user_data."""

    request_id: str
    node: str
    receipt: bytes

    def __post_init__(self) -> None:
        _claims.request_id("request_id", self.request_id)
        _claims.text("node", self.node, NODE_BYTES_MAX)
        if type(self.receipt) is not bytes or not 0 < len(self.receipt) <= ENVELOPE_BYTES_MAX:
            raise _claims.ClaimError("receipt", f"must be 1..{ENVELOPE_BYTES_MAX} bytes")

    @property
    def kind(self) -> EvidenceKind:
        return EvidenceKind.RECEIPT

    def message(self) -> ledger_pb2.ReceiptRecorded:
        return ledger_pb2.ReceiptRecorded(
            request_id=self.request_id, node=self.node, receipt=self.receipt
        )

    def digest(self) -> bytes:
        """E5, docs/agent-format.md R8: SHA-256 of the receipt envelope as the node signed it."""
        return receipt_digest(self.receipt)


Evidence = NodeKeyEvidence | ReceiptEvidence


def encode_account_created(index: int, account: Account) -> bytes:
    entry = ledger_pb2.LedgerEntry(
        index=index,
        timestamp_ns=account.timestamp_ns,
        account_created=ledger_pb2.AccountCreated(
            id=account.id,
            kind=int(account.kind),  # type: ignore[arg-type]
            tenant=account.tenant or "",
            system=int(account.system or 0),  # type: ignore[arg-type]
            debits_must_not_exceed_credits=bool(
                account.flags & AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS
            ),
        ),
    )
    return entry.SerializeToString(deterministic=True)


def transfer_to_proto(transfer: Transfer) -> quota_pb2.Transfer:
    message = quota_pb2.Transfer()
    _fill_transfer(message, transfer)
    return message


def _fill_transfer(message: quota_pb2.Transfer, transfer: Transfer) -> None:
    """Set the fields of an empty `message` from `transfer`, in place.

    This is the append path's hot spot (one call per log entry): filling the nested messages of
    a LedgerEntry in place, skipping fields that are zero, is ~2.5x faster than building them
    with keyword arguments and copying them in, and serializes to the same bytes (a zero proto3
    scalar is never written; `flags` is marked present either way). tests/ledger/test_entries.py
    pins the bytes.
    """
    message.id = id_to_bytes(transfer.id)
    if transfer.debit_account_id:
        message.debit_account_id = transfer.debit_account_id
    if transfer.credit_account_id:
        message.credit_account_id = transfer.credit_account_id
    if transfer.amount:
        message.amount = transfer.amount
    if transfer.pending_id:
        message.pending_id = id_to_bytes(transfer.pending_id)
    if transfer.user_data:
        message.user_data = transfer.user_data
    if transfer.kind:
        message.kind = transfer.kind  # type: ignore[assignment]
    if transfer.code:
        message.code = transfer.code  # type: ignore[assignment]
    flags = int(transfer.flags)  # plain int: IntFlag arithmetic costs ~1 us per operation
    message.flags.SetInParent()
    if flags:
        message.flags.linked = bool(flags & _LINKED)
        message.flags.pending = bool(flags & _PENDING)
        message.flags.post_pending = bool(flags & _POST_PENDING)
        message.flags.void_pending = bool(flags & _VOID_PENDING)
    if transfer.timeout_seconds:
        message.timeout_seconds = transfer.timeout_seconds
    if transfer.timestamp_ns:
        message.timestamp_ns = transfer.timestamp_ns


_LINKED = int(TransferFlag.LINKED)
_PENDING = int(TransferFlag.PENDING)
_POST_PENDING = int(TransferFlag.POST_PENDING)
_VOID_PENDING = int(TransferFlag.VOID_PENDING)


def transfer_from_proto(message: quota_pb2.Transfer) -> Transfer:
    """The domain transfer of a wire message. Ids must already be checked to be 16 bytes."""
    flags = message.flags
    return Transfer(
        id=id_from_bytes(message.id),
        debit_account_id=message.debit_account_id,
        credit_account_id=message.credit_account_id,
        amount=message.amount,
        pending_id=id_from_bytes(message.pending_id) if message.pending_id else 0,
        user_data=message.user_data,
        kind=message.kind,
        code=message.code,
        flags=(_LINKED if flags.linked else 0)
        | (_PENDING if flags.pending else 0)
        | (_POST_PENDING if flags.post_pending else 0)
        | (_VOID_PENDING if flags.void_pending else 0),
        timeout_seconds=message.timeout_seconds,
        timestamp_ns=message.timestamp_ns,
    )


def encode_transfer_recorded(index: int, stored: StoredTransfer) -> bytes:
    """L1: a TransferRecorded leaf. Written directly in the wire format (the append path's hot
    spot, orbitq.ledger._transfer_wire); protobuf encodes the values that path leaves to it."""
    data = transfer_recorded_bytes(index, stored)
    if data is not None:
        return data
    entry = ledger_pb2.LedgerEntry(index=index, timestamp_ns=stored.transfer.timestamp_ns)
    recorded = entry.transfer_recorded
    _fill_transfer(recorded.transfer, stored.transfer)
    recorded.result = int(stored.result)  # type: ignore[assignment]
    return entry.SerializeToString(deterministic=True)


def encode_evidence(index: int, timestamp_ns: int, evidence: Evidence) -> bytes:
    """E1, E5: a NodeKeyEnrolled or ReceiptRecorded leaf."""
    entry = ledger_pb2.LedgerEntry(index=index, timestamp_ns=timestamp_ns)
    if isinstance(evidence, NodeKeyEvidence):
        entry.node_key_enrolled.CopyFrom(evidence.message())
    else:
        entry.receipt_recorded.CopyFrom(evidence.message())
    return entry.SerializeToString(deterministic=True)


def evidence_of(entry: ledger_pb2.LedgerEntry) -> Evidence | None:
    """The evidence an entry records (None: it records none); ValueError if it breaks E5."""
    body = entry.WhichOneof("body")
    if body == "node_key_enrolled":
        enrolled = entry.node_key_enrolled
        evidence = NodeKeyEvidence(
            node=enrolled.node,
            public_key=enrolled.public_key,
            fuel_per_core_second=enrolled.fuel_per_core_second,
            runtime=enrolled.runtime,
        )
        if enrolled.key_id != evidence.key_id:
            raise ValueError(
                f"the entry says key id {enrolled.key_id.hex() or '(none)'}, but the key id of "
                f"node {enrolled.node!r} and its public key is {evidence.key_id.hex()}"
            )
        return evidence
    if body == "receipt_recorded":
        recorded = entry.receipt_recorded
        return ReceiptEvidence(recorded.request_id, recorded.node, recorded.receipt)
    return None


@dataclass(frozen=True, slots=True)
class DecodedEntry:
    """One leaf, decoded: exactly one of `account`, `transfer` and `evidence` is set."""

    index: int
    timestamp_ns: int
    account: Account | None = None
    transfer: Transfer | None = None
    result: Result | None = None
    evidence: Evidence | None = None


def decode_entry(data: bytes) -> DecodedEntry:
    """Parse leaf bytes; raises ValueError on bytes that are not a LedgerEntry."""
    entry = ledger_pb2.LedgerEntry()
    try:
        entry.ParseFromString(data)
    except Exception as error:  # protobuf raises its own DecodeError
        raise ValueError(f"not a LedgerEntry: {error}") from None
    body = entry.WhichOneof("body")
    if body == "account_created":
        created = entry.account_created
        return DecodedEntry(
            index=entry.index,
            timestamp_ns=entry.timestamp_ns,
            account=Account(
                id=created.id,
                kind=Kind(created.kind),
                tenant=created.tenant or None,
                system=SystemAccount(created.system) if created.system else None,
                flags=AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS
                if created.debits_must_not_exceed_credits
                else 0,
                timestamp_ns=entry.timestamp_ns,
            ),
        )
    if body == "transfer_recorded":
        recorded = entry.transfer_recorded
        return DecodedEntry(
            index=entry.index,
            timestamp_ns=entry.timestamp_ns,
            transfer=transfer_from_proto(recorded.transfer),
            result=Result(recorded.result),
        )
    evidence = evidence_of(entry)
    if evidence is not None:
        return DecodedEntry(index=entry.index, timestamp_ns=entry.timestamp_ns, evidence=evidence)
    raise ValueError("a LedgerEntry without a body")
