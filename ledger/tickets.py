"""Tickets: the broker's signed order to run one placed request on one node (rules T1-T9 of
docs/agent-format.md).

Owns: the `Ticket` claim set (RFC 8392 CWT claims plus private claims below -65536), its
deterministic encoding, signing it into a COSE_Sign1 (orbitq.ledger.cose), and opening one
onboard (`TicketVerifier.open`): the envelope with the pinned ticket key, then the claims — the
issuer is the pinned broker, the subject is this node, the time is between not-before and
expiry (with a skew), the request id was never run here. Every refusal is a `TicketRefused`
with a `RefusalReason` (the numbers of agent.proto's TicketRefusalReason), which the agent
reports at its next contact.

Pure (cbor2 + cryptography), fast: a ticket opens in about 1.1 x one raw Ed25519 verify
(bench/agent_formats.py).

Does not own: the envelope format (orbitq.ledger.cose), what the agent does with a ticket,
where the replay set lives (the caller's `already_run`), or the clock (the caller's `now`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from hashlib import sha256
from typing import Final

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orbitq.ledger import _claims
from orbitq.ledger._claims import ClaimError, fixed_bytes, optional_digest, text, uint
from orbitq.ledger.cose import (
    BAD_SIGNATURE,
    MALFORMED,
    UNKNOWN_KEY,
    EnvelopeError,
    Sign1Verifier,
    dumps,
    sign1,
)
from orbitq.ledger.errors import LedgerIntegrityError

__all__ = [
    "DOWNLINK_WINDOWS_MAX",
    "ISSUER_BYTES_MAX",
    "NODE_BYTES_MAX",
    "STATION_BYTES_MAX",
    "TICKET_CLAIMS",
    "DownlinkWindow",
    "RefusalReason",
    "Ticket",
    "TicketRefused",
    "TicketVerifier",
    "decode_ticket",
    "encode_ticket",
    "open_ticket",
    "peek_request_id",
    "sign_ticket",
    "ticket_digest",
]

ISSUER_BYTES_MAX: Final = 200
"""T3: the issuer is the broker's origin (at most 200 characters, all ASCII)."""
NODE_BYTES_MAX: Final = 64
"""T3: node ids (the broker allows 16 characters; the format leaves room)."""
STATION_BYTES_MAX: Final = 64
"""T5: ground-station ids in the downlink plan (the broker allows 63 characters)."""
DOWNLINK_WINDOWS_MAX: Final = 64
"""T5: the most downlink windows a ticket carries."""

# T2: claim keys. RFC 8392 §3.1 registered claims, then private ones (below -65536, §9.1).
ISS, SUB, EXP, NBF, IAT, CTI = 1, 2, 4, 5, 6, 7
START, END, RUN_SECONDS, CPU_MILLICORES, STORAGE_MB, OUTPUT_BYTES_MAX, FUEL_MAX = range(
    -65537, -65544, -1
)
DOWNLINK, WORKLOAD_SHA256, INPUT_SHA256, INPUT_BYTES, DOWNLINK_MBPS, UPLINK_SECONDS = range(
    -65544, -65550, -1
)

TICKET_CLAIMS: Final = {
    ISS: "issuer",
    SUB: "node",
    EXP: "expires",
    NBF: "not_before",
    IAT: "issued_at",
    CTI: "request_id",
    START: "start",
    END: "end",
    RUN_SECONDS: "run_seconds",
    CPU_MILLICORES: "cpu_millicores",
    STORAGE_MB: "storage_mb",
    OUTPUT_BYTES_MAX: "output_bytes_max",
    FUEL_MAX: "fuel_max",
    DOWNLINK: "downlink",
    WORKLOAD_SHA256: "workload_sha256",
    INPUT_SHA256: "input_sha256",
    INPUT_BYTES: "input_bytes",
    DOWNLINK_MBPS: "downlink_mbps",
    UPLINK_SECONDS: "uplink_seconds",
}
"""T2: claim key -> Ticket field, in deterministic order (RFC 8949 §4.2.1)."""
_LAYOUTS = _claims.layouts(TICKET_CLAIMS, optional=(INPUT_SHA256,))


class RefusalReason(IntEnum):
    """Why an agent refused a ticket (T8). Equal to orbitq.v1.TicketRefusalReason."""

    MALFORMED = 1
    BAD_SIGNATURE = 2
    UNKNOWN_KEY = 3
    WRONG_ISSUER = 4
    WRONG_NODE = 5
    EXPIRED = 6
    NOT_YET_VALID = 7
    REPLAY = 8
    BLOB_UNAVAILABLE = 9

    @property
    def label(self) -> str:
        return self.name.lower()


_REASON_OF_ENVELOPE = {
    MALFORMED: RefusalReason.MALFORMED,
    BAD_SIGNATURE: RefusalReason.BAD_SIGNATURE,
    UNKNOWN_KEY: RefusalReason.UNKNOWN_KEY,
}  # bad_alg: MALFORMED


class TicketRefused(LedgerIntegrityError):  # noqa: N818  (the name the design fixed)
    """A ticket the agent must not run. `reason` is the RefusalReason, `detail` says what was
    found (for people), `request_id` the request the ticket names when it could be read."""

    def __init__(self, reason: RefusalReason, detail: str, request_id: str | None = None) -> None:
        super().__init__(f"ticket refused ({reason.label}): {detail}")
        self.reason = reason
        self.detail = detail
        self.request_id = request_id

    def __reduce__(
        self,
    ) -> tuple[type[TicketRefused], tuple[RefusalReason, str, str | None]]:
        return (type(self), (self.reason, self.detail, self.request_id))


@dataclass(frozen=True, slots=True)
class DownlinkWindow:
    """T5: a planned downlink: ground station, [start, end] in Unix seconds."""

    station: str
    start: int
    end: int

    def __post_init__(self) -> None:
        start, end = self.start, self.end
        if not (
            type(start) is int
            and type(end) is int
            and 0 <= start <= end <= _claims.UINT_MAX
            and _claims.text_valid(self.station, STATION_BYTES_MAX)
        ):
            text("downlink station", self.station, STATION_BYTES_MAX)
            uint("downlink start", self.start)
            uint("downlink end", self.end)
        if self.start > self.end:
            raise ClaimError("downlink", f"window {self.start}..{self.end} ends before it starts")


@dataclass(frozen=True, slots=True)
class Ticket:
    """T2-T6: the claims of one ticket. Times are Unix seconds (NumericDate)."""

    issuer: str
    node: str
    request_id: str
    issued_at: int
    not_before: int
    expires: int
    start: int
    end: int
    run_seconds: int
    cpu_millicores: int
    storage_mb: int
    output_bytes_max: int
    fuel_max: int
    downlink: tuple[DownlinkWindow, ...]
    workload_sha256: bytes
    input_sha256: bytes | None
    input_bytes: int
    downlink_mbps: int
    uplink_seconds: int

    def __post_init__(self) -> None:
        # The fast checks first (a ticket is opened on every pull); the precise ones, which
        # name the failing field, only when those fail.
        if not (
            _claims.text_valid(self.issuer, ISSUER_BYTES_MAX)
            and _claims.text_valid(self.node, NODE_BYTES_MAX)
            and _claims.uints_valid(
                (
                    self.issued_at,
                    self.not_before,
                    self.expires,
                    self.start,
                    self.end,
                    self.run_seconds,
                    self.cpu_millicores,
                    self.storage_mb,
                    self.output_bytes_max,
                    self.fuel_max,
                    self.input_bytes,
                    self.downlink_mbps,
                    self.uplink_seconds,
                )
            )
        ):
            text("issuer", self.issuer, ISSUER_BYTES_MAX)
            text("node", self.node, NODE_BYTES_MAX)
            for name in _UINT_FIELDS:
                uint(name, getattr(self, name))
        _claims.request_id("request_id", self.request_id)
        fixed_bytes("workload_sha256", self.workload_sha256, _claims.HASH_BYTES)
        optional_digest("input_sha256", self.input_sha256)
        downlink: object = self.downlink
        if not isinstance(downlink, tuple) and isinstance(downlink, Iterable):
            object.__setattr__(self, "downlink", tuple(downlink))
        if len(self.downlink) > DOWNLINK_WINDOWS_MAX:
            raise ClaimError(
                "downlink", f"has {len(self.downlink)} windows; at most {DOWNLINK_WINDOWS_MAX}"
            )
        for window in self.downlink:
            if type(window) is not DownlinkWindow:
                raise ClaimError("downlink", "must hold DownlinkWindow values")
        if self.start > self.end:
            raise ClaimError("end", f"{self.end} is before start {self.start}")
        if self.not_before > self.expires:
            raise ClaimError("expires", f"{self.expires} is before not_before {self.not_before}")


_UINT_FIELDS = (
    "issued_at",
    "not_before",
    "expires",
    "start",
    "end",
    "run_seconds",
    "cpu_millicores",
    "storage_mb",
    "output_bytes_max",
    "fuel_max",
    "input_bytes",
    "downlink_mbps",
    "uplink_seconds",
)


def encode_ticket(ticket: Ticket) -> bytes:
    """T1-T2: the claim set in deterministic CBOR (the keys are written in TICKET_CLAIMS'
    order, which is RFC 8949 §4.2.1's)."""
    claims: dict[int, object] = {
        ISS: ticket.issuer,
        SUB: ticket.node,
        EXP: ticket.expires,
        NBF: ticket.not_before,
        IAT: ticket.issued_at,
        CTI: bytes.fromhex(ticket.request_id),
        START: ticket.start,
        END: ticket.end,
        RUN_SECONDS: ticket.run_seconds,
        CPU_MILLICORES: ticket.cpu_millicores,
        STORAGE_MB: ticket.storage_mb,
        OUTPUT_BYTES_MAX: ticket.output_bytes_max,
        FUEL_MAX: ticket.fuel_max,
        DOWNLINK: [[w.station, w.start, w.end] for w in ticket.downlink],
        WORKLOAD_SHA256: ticket.workload_sha256,
    }
    if ticket.input_sha256 is not None:  # T6: absent = no input
        claims[INPUT_SHA256] = ticket.input_sha256
    claims[INPUT_BYTES] = ticket.input_bytes
    claims[DOWNLINK_MBPS] = ticket.downlink_mbps
    claims[UPLINK_SECONDS] = ticket.uplink_seconds
    return dumps(claims)


def decode_ticket(payload: bytes) -> Ticket:
    """T2-T7: the ticket of a verified payload; raises EnvelopeError(malformed) unless the
    payload is exactly the deterministic encoding of a valid ticket."""
    return _claims.read(payload, TICKET_CLAIMS, _LAYOUTS, _ticket_of)


def _ticket_of(claims: Mapping[int, object]) -> Ticket:
    return Ticket(
        issuer=claims.get(ISS),  # type: ignore[arg-type]  # __post_init__ checks types
        node=claims.get(SUB),  # type: ignore[arg-type]
        request_id=_claims.cti_to_request_id("request_id", claims.get(CTI)),
        issued_at=claims.get(IAT),  # type: ignore[arg-type]
        not_before=claims.get(NBF),  # type: ignore[arg-type]
        expires=claims.get(EXP),  # type: ignore[arg-type]
        start=claims.get(START),  # type: ignore[arg-type]
        end=claims.get(END),  # type: ignore[arg-type]
        run_seconds=claims.get(RUN_SECONDS),  # type: ignore[arg-type]
        cpu_millicores=claims.get(CPU_MILLICORES),  # type: ignore[arg-type]
        storage_mb=claims.get(STORAGE_MB),  # type: ignore[arg-type]
        output_bytes_max=claims.get(OUTPUT_BYTES_MAX),  # type: ignore[arg-type]
        fuel_max=claims.get(FUEL_MAX),  # type: ignore[arg-type]
        downlink=_windows(claims.get(DOWNLINK)),
        workload_sha256=claims.get(WORKLOAD_SHA256),  # type: ignore[arg-type]
        input_sha256=claims.get(INPUT_SHA256),  # type: ignore[arg-type]
        input_bytes=claims.get(INPUT_BYTES),  # type: ignore[arg-type]
        downlink_mbps=claims.get(DOWNLINK_MBPS),  # type: ignore[arg-type]
        uplink_seconds=claims.get(UPLINK_SECONDS),  # type: ignore[arg-type]
    )


def _windows(value: object) -> tuple[DownlinkWindow, ...]:
    """T5: `[[station, start, end], ...]` (cbor2 6 may decode the arrays as tuples)."""
    if not isinstance(value, list | tuple):
        raise ClaimError("downlink", "must be an array of [station, start, end] arrays")
    if len(value) > DOWNLINK_WINDOWS_MAX:
        raise ClaimError("downlink", f"has {len(value)} windows; at most {DOWNLINK_WINDOWS_MAX}")
    windows = []
    for item in value:
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise ClaimError("downlink", "must be an array of [station, start, end] arrays")
        windows.append(DownlinkWindow(item[0], item[1], item[2]))
    return tuple(windows)


def sign_ticket(ticket: Ticket, private_key: Ed25519PrivateKey, kid: bytes) -> bytes:
    """T1: the ticket as a COSE_Sign1 signed with the broker's ticket key (kid =
    key_id(origin, ticket public key))."""
    return sign1(encode_ticket(ticket), private_key, kid)


def ticket_digest(envelope: bytes) -> bytes:
    """SHA-256 of a ticket envelope as signed: what a receipt's ticket_sha256 binds to (R4)."""
    return sha256(envelope).digest()


class TicketVerifier:
    """T7-T9: the agent's onboard check, with the ticket key and issuer pinned at enrollment."""

    __slots__ = ("_envelope", "_issuer")

    def __init__(self, public_key: bytes, kid: bytes, issuer: str) -> None:
        self._envelope = Sign1Verifier(public_key, kid)
        self._issuer = issuer

    def open(
        self,
        envelope: bytes,
        *,
        node: str,
        now: int,
        skew_seconds: int,
        already_run: Callable[[str], bool],
    ) -> Ticket:
        """The ticket, if this node may run it at `now` (Unix seconds); raises TicketRefused.

        T8, in order: the envelope and signature (malformed, unknown_key, bad_signature); the
        claims (malformed); issuer (wrong_issuer); subject (wrong_node); `now` before
        `expires + skew` (expired) and not before `not_before - skew` (not_yet_valid); the
        request id not yet run here, as `already_run` says (replay)."""
        ticket = self.verified(envelope)
        if ticket.issuer != self._issuer:
            raise TicketRefused(
                RefusalReason.WRONG_ISSUER,
                f"issued by {ticket.issuer!r}, not by the pinned broker {self._issuer!r}",
                ticket.request_id,
            )
        if ticket.node != node:
            raise TicketRefused(
                RefusalReason.WRONG_NODE,
                f"the ticket is for node {ticket.node!r}, this is {node!r}",
                ticket.request_id,
            )
        if now >= ticket.expires + skew_seconds:
            raise TicketRefused(
                RefusalReason.EXPIRED,
                f"expired at {ticket.expires} (now {now}, skew {skew_seconds} s)",
                ticket.request_id,
            )
        if now < ticket.not_before - skew_seconds:
            raise TicketRefused(
                RefusalReason.NOT_YET_VALID,
                f"valid from {ticket.not_before} (now {now}, skew {skew_seconds} s)",
                ticket.request_id,
            )
        if already_run(ticket.request_id):
            raise TicketRefused(
                RefusalReason.REPLAY,
                f"request {ticket.request_id} was already run on this node",
                ticket.request_id,
            )
        return ticket

    def verified(self, envelope: bytes) -> Ticket:
        """The ticket once its envelope, signature and claim set check (T7), without the
        claim checks of T8 (for audits on the ground, long after expiry)."""
        try:
            return decode_ticket(self._envelope.payload(envelope))
        except EnvelopeError as error:
            reason = _REASON_OF_ENVELOPE.get(error.reason, RefusalReason.MALFORMED)
            raise TicketRefused(reason, error.detail, peek_request_id(envelope)) from None


def open_ticket(envelope: bytes, public_key: bytes, kid: bytes) -> Ticket:
    """T7: a ticket verified under the broker's ticket key, its claims not checked against a
    node or a time (`orbitq request audit` reads old tickets); raises TicketRefused."""
    return TicketVerifier(public_key, kid, "").verified(envelope)


def peek_request_id(envelope: bytes) -> str | None:
    """The request id a ticket names, read without verifying anything, for refusal reports;
    None if it cannot be read. Never raises."""
    try:
        item = cbor2.loads(envelope)
        payload = item.value[2]
        if not isinstance(payload, bytes):
            return None
        cti = cbor2.loads(payload).get(CTI)
    except Exception:  # anyone's bytes: any failure means "cannot be read"
        return None
    return cti.hex() if isinstance(cti, bytes) and len(cti) == _claims.REQUEST_ID_BYTES else None
