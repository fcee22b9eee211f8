"""Usage receipts: what a node says one run used, signed with the node's key (rules R1-R8 of
docs/agent-format.md), and the charge that follows from one.

Owns: the `Receipt` claim set and its deterministic encoding, signing it into a COSE_Sign1
(orbitq.ledger.cose) and opening one with the node's enrolled key (`open_receipt`,
`ReceiptVerifier`), the run outcomes (`RunOutcome`, the numbers of request.proto's RunOutcome),
the receipt's digest (the settling transfers' user_data), and the arithmetic of charges:
core-seconds from fuel (`cpu_core_seconds`), link seconds from bytes (`link_seconds_of`), and
the charge per resource kind (`charge_of`).

Pure (cbor2 + cryptography): the agent signs with it, the broker settles with it, the audit
and tenants verify with it.

Does not own: whether a receipt may settle its request (the broker's checks against the
ticket and the request), or the ledger transfers (orbitq.services).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from hashlib import sha256
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orbitq.ledger import _claims
from orbitq.ledger._claims import ClaimError, fixed_bytes, optional_digest, text, uint
from orbitq.ledger.cose import EnvelopeError, Sign1Verifier, dumps, sign1
from orbitq.ledger.model import Kind
from orbitq.ledger.tickets import NODE_BYTES_MAX

__all__ = [
    "EXIT_CODE_MAX",
    "RECEIPT_CLAIMS",
    "RUNTIME_BYTES_MAX",
    "Charge",
    "Receipt",
    "ReceiptError",
    "ReceiptVerifier",
    "RunOutcome",
    "charge_of",
    "core_seconds_problem",
    "cpu_core_seconds",
    "decode_receipt",
    "encode_receipt",
    "link_seconds_of",
    "open_receipt",
    "receipt_digest",
    "sign_receipt",
]

RUNTIME_BYTES_MAX: Final = 64
"""R3: the sandbox's runtime and version, e.g. "wasmtime 51.0.0"."""
EXIT_CODE_MAX: Final = 2**32 - 1
"""R3: a WASI exit status is a u32 (proc_exit)."""
SECONDS_PER_HOUR: Final = 3600
BITS_PER_BYTE: Final = 8
BITS_PER_MEGABIT: Final = 1_000_000

# R2: claim keys. RFC 8392 §3.1 registered claims, then private ones (below -65536, §9.1).
ISS, IAT, CTI = 1, 6, 7
(
    TICKET_SHA256,
    OUTCOME,
    EXIT_CODE,
    FUEL,
    CPU_CORE_SECONDS,
    STORAGE_MB_SECONDS,
    BYTES_DOWNLINKED,
    LINK_SECONDS,
    UPLINK_SECONDS,
    START,
    END,
    RESULT_SHA256,
    RESULT_BYTES,
    RUNTIME,
) = range(-65601, -65615, -1)

RECEIPT_CLAIMS: Final = {
    ISS: "node",
    IAT: "issued_at",
    CTI: "request_id",
    TICKET_SHA256: "ticket_sha256",
    OUTCOME: "outcome",
    EXIT_CODE: "exit_code",
    FUEL: "fuel",
    CPU_CORE_SECONDS: "cpu_core_seconds",
    STORAGE_MB_SECONDS: "storage_mb_seconds",
    BYTES_DOWNLINKED: "bytes_downlinked",
    LINK_SECONDS: "link_seconds",
    UPLINK_SECONDS: "uplink_seconds",
    START: "start",
    END: "end",
    RESULT_SHA256: "result_sha256",
    RESULT_BYTES: "result_bytes",
    RUNTIME: "runtime",
}
"""R2: claim key -> Receipt field, in deterministic order (RFC 8949 §4.2.1)."""
_LAYOUTS = _claims.layouts(RECEIPT_CLAIMS, optional=(RESULT_SHA256,))


class RunOutcome(IntEnum):
    """How a run ended (R5). Equal to orbitq.v1.RunOutcome."""

    OK = 1
    TRAP = 2
    OUT_OF_FUEL = 3
    WALL_TIME = 4
    OUTPUT_TOO_LARGE = 5
    EXIT = 6
    ABORTED = 7

    @property
    def label(self) -> str:
        return self.name.lower()


class ReceiptError(EnvelopeError):
    """A receipt was refused: `reason` is malformed, bad_alg, unknown_key or bad_signature
    (as for any envelope, orbitq.ledger.cose), `detail` says what was found."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """R2-R6: the claims of one receipt. Times are Unix seconds (NumericDate)."""

    node: str
    request_id: str
    issued_at: int
    ticket_sha256: bytes
    outcome: RunOutcome
    exit_code: int
    fuel: int
    cpu_core_seconds: int
    storage_mb_seconds: int
    bytes_downlinked: int
    link_seconds: int
    uplink_seconds: int
    start: int
    end: int
    result_sha256: bytes | None
    result_bytes: int
    runtime: str

    def __post_init__(self) -> None:
        text("node", self.node, NODE_BYTES_MAX)
        _claims.request_id("request_id", self.request_id)
        fixed_bytes("ticket_sha256", self.ticket_sha256, _claims.HASH_BYTES)
        if type(self.outcome) is not RunOutcome:
            number = uint("outcome", self.outcome)
            if number not in _OUTCOMES:
                raise ClaimError("outcome", f"{number} is not a RunOutcome (1..{len(_OUTCOMES)})")
            object.__setattr__(self, "outcome", RunOutcome(number))
        uint("exit_code", self.exit_code, EXIT_CODE_MAX)
        for name in _UINT_FIELDS:
            uint(name, getattr(self, name))
        optional_digest("result_sha256", self.result_sha256)
        text("runtime", self.runtime, RUNTIME_BYTES_MAX)
        if self.start > self.end:
            raise ClaimError("end", f"{self.end} is before start {self.start}")


_OUTCOMES = frozenset(int(outcome) for outcome in RunOutcome)
_UINT_FIELDS = (
    "issued_at",
    "fuel",
    "cpu_core_seconds",
    "storage_mb_seconds",
    "bytes_downlinked",
    "link_seconds",
    "uplink_seconds",
    "start",
    "end",
    "result_bytes",
)


def encode_receipt(receipt: Receipt) -> bytes:
    """R1-R2: the claim set in deterministic CBOR (keys in RECEIPT_CLAIMS' order)."""
    claims: dict[int, object] = {
        ISS: receipt.node,
        IAT: receipt.issued_at,
        CTI: bytes.fromhex(receipt.request_id),
        TICKET_SHA256: receipt.ticket_sha256,
        OUTCOME: int(receipt.outcome),
        EXIT_CODE: receipt.exit_code,
        FUEL: receipt.fuel,
        CPU_CORE_SECONDS: receipt.cpu_core_seconds,
        STORAGE_MB_SECONDS: receipt.storage_mb_seconds,
        BYTES_DOWNLINKED: receipt.bytes_downlinked,
        LINK_SECONDS: receipt.link_seconds,
        UPLINK_SECONDS: receipt.uplink_seconds,
        START: receipt.start,
        END: receipt.end,
    }
    if receipt.result_sha256 is not None:  # R6: absent = no result
        claims[RESULT_SHA256] = receipt.result_sha256
    claims[RESULT_BYTES] = receipt.result_bytes
    claims[RUNTIME] = receipt.runtime
    return dumps(claims)


def decode_receipt(payload: bytes) -> Receipt:
    """R2-R7: the receipt of a verified payload; raises ReceiptError(malformed) unless the
    payload is exactly the deterministic encoding of a valid receipt."""
    try:
        return _claims.read(payload, RECEIPT_CLAIMS, _LAYOUTS, _receipt_of)
    except EnvelopeError as error:
        raise ReceiptError(error.reason, error.detail) from None


def _receipt_of(claims: Mapping[int, object]) -> Receipt:
    return Receipt(
        node=claims.get(ISS),  # type: ignore[arg-type]  # __post_init__ checks types
        request_id=_claims.cti_to_request_id("request_id", claims.get(CTI)),
        issued_at=claims.get(IAT),  # type: ignore[arg-type]
        ticket_sha256=claims.get(TICKET_SHA256),  # type: ignore[arg-type]
        outcome=claims.get(OUTCOME),  # type: ignore[arg-type]
        exit_code=claims.get(EXIT_CODE),  # type: ignore[arg-type]
        fuel=claims.get(FUEL),  # type: ignore[arg-type]
        cpu_core_seconds=claims.get(CPU_CORE_SECONDS),  # type: ignore[arg-type]
        storage_mb_seconds=claims.get(STORAGE_MB_SECONDS),  # type: ignore[arg-type]
        bytes_downlinked=claims.get(BYTES_DOWNLINKED),  # type: ignore[arg-type]
        link_seconds=claims.get(LINK_SECONDS),  # type: ignore[arg-type]
        uplink_seconds=claims.get(UPLINK_SECONDS),  # type: ignore[arg-type]
        start=claims.get(START),  # type: ignore[arg-type]
        end=claims.get(END),  # type: ignore[arg-type]
        result_sha256=claims.get(RESULT_SHA256),  # type: ignore[arg-type]
        result_bytes=claims.get(RESULT_BYTES),  # type: ignore[arg-type]
        runtime=claims.get(RUNTIME),  # type: ignore[arg-type]
    )


def sign_receipt(receipt: Receipt, private_key: Ed25519PrivateKey, kid: bytes) -> bytes:
    """R1: the receipt as a COSE_Sign1 signed with the node key (kid = key_id(node, node
    public key))."""
    return sign1(encode_receipt(receipt), private_key, kid)


class ReceiptVerifier:
    """R7: opens the receipts of one node key (the key of its latest NodeKeyEnrolled entry)."""

    __slots__ = ("_envelope",)

    def __init__(self, public_key: bytes, kid: bytes) -> None:
        self._envelope = Sign1Verifier(public_key, kid)

    def open(self, envelope: bytes) -> Receipt:
        """The receipt once envelope, signature and claim set check; raises ReceiptError."""
        try:
            payload = self._envelope.payload(envelope)
        except EnvelopeError as error:
            raise ReceiptError(error.reason, error.detail) from None
        return decode_receipt(payload)


def open_receipt(envelope: bytes, public_key: bytes, kid: bytes) -> Receipt:
    """R7: the receipt of `envelope` under the node key; raises ReceiptError."""
    return ReceiptVerifier(public_key, kid).open(envelope)


def receipt_digest(envelope: bytes) -> bytes:
    """R8: SHA-256 of the envelope exactly as signed: the settling transfers' user_data."""
    return sha256(envelope).digest()


# -- charges ---------------------------------------------------------------------------------------


def cpu_core_seconds(fuel: int, fuel_per_core_second: int) -> int:
    """R4: core-seconds charged for `fuel` at the node's enrolled rate, rounded up."""
    if fuel < 0 or fuel_per_core_second <= 0:
        raise ValueError("fuel must be >= 0 and the rate > 0")
    return -(-fuel // fuel_per_core_second)


def core_seconds_problem(receipt: Receipt, fuel_per_core_second: int) -> str | None:
    """R4: what is wrong with the receipt's core-seconds at the node's enrolled rate (None:
    they are ceil(fuel / rate)). The broker refuses such a receipt, the audit (V16) and the
    SDK (C6) name it."""
    expected = cpu_core_seconds(receipt.fuel, fuel_per_core_second)
    if receipt.cpu_core_seconds == expected:
        return None
    return (
        f"claims {receipt.cpu_core_seconds} core-seconds for fuel {receipt.fuel}; at the "
        f"enrolled rate of {fuel_per_core_second} fuel per core-second that is {expected}"
    )


def link_seconds_of(bytes_downlinked: int, downlink_mbps: int) -> int:
    """R4: seconds of contact to downlink `bytes_downlinked` at `downlink_mbps` (10^6 bit/s),
    rounded up: ceil(bytes x 8 / (downlink_mbps x 10^6))."""
    if bytes_downlinked < 0 or downlink_mbps <= 0:
        raise ValueError("bytes must be >= 0 and the rate > 0")
    return -(-(bytes_downlinked * BITS_PER_BYTE) // (downlink_mbps * BITS_PER_MEGABIT))


@dataclass(frozen=True, slots=True)
class Charge:
    """What a receipt charges, per resource kind, in the ledger's units."""

    cpu: int
    """core-seconds"""
    storage: int
    """MB-hours"""
    link: int
    """link-seconds"""

    def of(self, kind: Kind) -> int:
        """The amount of one kind."""
        if kind is Kind.CPU:
            return self.cpu
        if kind is Kind.STORAGE:
            return self.storage
        return self.link


def charge_of(receipt: Receipt) -> Charge:
    """R4: cpu = the receipt's cpu_core_seconds; storage = ceil(storage_mb_seconds / 3600);
    link = link_seconds + uplink_seconds. The broker posts at most this (and at most what was
    reserved); the audit checks it (V17)."""
    return Charge(
        cpu=receipt.cpu_core_seconds,
        storage=-(-receipt.storage_mb_seconds // SECONDS_PER_HOUR),
        link=receipt.link_seconds + receipt.uplink_seconds,
    )
