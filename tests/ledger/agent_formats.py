"""Tickets, receipts and keys for the tests of the agent formats: samples and Hypothesis
strategies of every valid value (docs/agent-format.md)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import strategies as st

from orbitq.ledger._claims import UINT_MAX
from orbitq.ledger.note import key_id
from orbitq.ledger.receipts import EXIT_CODE_MAX, RUNTIME_BYTES_MAX, Receipt, RunOutcome
from orbitq.ledger.tickets import _UINT_FIELDS as UINT_FIELDS
from orbitq.ledger.tickets import (
    DOWNLINK_WINDOWS_MAX,
    ISSUER_BYTES_MAX,
    NODE_BYTES_MAX,
    STATION_BYTES_MAX,
    DownlinkWindow,
    Ticket,
)

ORIGIN = "orbitq.example/ledger"
NODE = "starlink-31234"
REQUEST_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
RATE = 15_000_000_000  # fuel per core-second
RUNTIME = "wasmtime 51.0.0"


@dataclass(frozen=True)
class Key:
    """An Ed25519 key with its key id under `name` (the broker origin, or a node id)."""

    name: str
    private: Ed25519PrivateKey

    @classmethod
    def new(cls, name: str) -> Key:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: int) -> Key:
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed.to_bytes(32, "big")))

    @cached_property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes_raw()

    @cached_property
    def kid(self) -> bytes:
        return key_id(self.name, self.public)

    def signing(self) -> tuple[Ed25519PrivateKey, bytes]:
        """(private key, key id): the last two arguments of sign_ticket and sign_receipt."""
        return self.private, self.kid


def sample_ticket(**changes: object) -> Ticket:
    fields: dict[str, object] = {
        "issuer": ORIGIN,
        "node": NODE,
        "request_id": REQUEST_ID,
        "issued_at": NOW,
        "not_before": NOW - 60,
        "expires": NOW + 7200,
        "start": NOW + 600,
        "end": NOW + 4200,
        "run_seconds": 600,
        "cpu_millicores": 1000,
        "storage_mb": 256,
        "output_bytes_max": 8 << 20,
        "fuel_max": 600 * RATE,
        "downlink": (
            DownlinkWindow("gs-svalbard", NOW + 5400, NOW + 5880),
            DownlinkWindow("gs-awarua", NOW + 9000, NOW + 9420),
        ),
        "workload_sha256": hashlib.sha256(b"detect.wasm").digest(),
        "input_sha256": hashlib.sha256(b"tile.bin").digest(),
        "input_bytes": 1_572_880,
        "downlink_mbps": 100,
        "uplink_seconds": 2,
    }
    fields.update(changes)
    return Ticket(**fields)  # type: ignore[arg-type]


def sample_receipt(**changes: object) -> Receipt:
    fields: dict[str, object] = {
        "node": NODE,
        "request_id": REQUEST_ID,
        "issued_at": NOW + 4300,
        "ticket_sha256": hashlib.sha256(b"ticket").digest(),
        "outcome": RunOutcome.OK,
        "exit_code": 0,
        "fuel": 1_234_567_890_123,
        "cpu_core_seconds": 83,  # ceil(1_234_567_890_123 / RATE)
        "storage_mb_seconds": 256 * 3600,
        "bytes_downlinked": 4_000_000,
        "link_seconds": 1,
        "uplink_seconds": 2,
        "start": NOW + 600,
        "end": NOW + 700,
        "result_sha256": hashlib.sha256(b"result").digest(),
        "result_bytes": 4_000_000,
        "runtime": RUNTIME,
    }
    fields.update(changes)
    return Receipt(**fields)  # type: ignore[arg-type]


# -- strategies --------------------------------------------------------------------------------

uints = st.integers(0, UINT_MAX)
digests = st.binary(min_size=32, max_size=32)
request_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)


def texts(bytes_max: int) -> st.SearchStrategy[str]:
    """Text claims: 1..bytes_max UTF-8 bytes, no control character; ASCII and not."""
    characters = st.characters(
        min_codepoint=0x20, exclude_categories=["Cs"], exclude_characters="\x7f"
    )
    return st.text(characters, min_size=1, max_size=bytes_max).filter(
        lambda value: len(value.encode("utf-8")) <= bytes_max
    )


@st.composite
def ordered_pairs(draw: st.DrawFn) -> tuple[int, int]:
    first, second = draw(uints), draw(uints)
    return min(first, second), max(first, second)


@st.composite
def windows(draw: st.DrawFn) -> DownlinkWindow:
    start, end = draw(ordered_pairs())
    return DownlinkWindow(draw(texts(STATION_BYTES_MAX)), start, end)


@st.composite
def tickets(draw: st.DrawFn) -> Ticket:
    start, end = draw(ordered_pairs())
    not_before, expires = draw(ordered_pairs())
    return Ticket(
        issuer=draw(texts(ISSUER_BYTES_MAX)),
        node=draw(texts(NODE_BYTES_MAX)),
        request_id=draw(request_ids),
        issued_at=draw(uints),
        not_before=not_before,
        expires=expires,
        start=start,
        end=end,
        run_seconds=draw(uints),
        cpu_millicores=draw(uints),
        storage_mb=draw(uints),
        output_bytes_max=draw(uints),
        fuel_max=draw(uints),
        downlink=tuple(draw(st.lists(windows(), max_size=DOWNLINK_WINDOWS_MAX // 8))),
        workload_sha256=draw(digests),
        input_sha256=draw(st.none() | digests),
        input_bytes=draw(uints),
        downlink_mbps=draw(uints),
        uplink_seconds=draw(uints),
    )


@st.composite
def receipts(draw: st.DrawFn) -> Receipt:
    start, end = draw(ordered_pairs())
    return Receipt(
        node=draw(texts(NODE_BYTES_MAX)),
        request_id=draw(request_ids),
        issued_at=draw(uints),
        ticket_sha256=draw(digests),
        outcome=draw(st.sampled_from(RunOutcome)),
        exit_code=draw(st.integers(0, EXIT_CODE_MAX)),
        fuel=draw(uints),
        cpu_core_seconds=draw(uints),
        storage_mb_seconds=draw(uints),
        bytes_downlinked=draw(uints),
        link_seconds=draw(uints),
        uplink_seconds=draw(uints),
        start=start,
        end=end,
        result_sha256=draw(st.none() | digests),
        result_bytes=draw(uints),
        runtime=draw(texts(RUNTIME_BYTES_MAX)),
    )


def largest_ticket() -> Ticket:
    """Every claim at its limit: the largest envelope the format allows."""
    station = "s" * STATION_BYTES_MAX
    return sample_ticket(
        issuer="i" * ISSUER_BYTES_MAX,
        node="n" * NODE_BYTES_MAX,
        **dict.fromkeys(UINT_FIELDS, UINT_MAX),
        downlink=tuple(
            DownlinkWindow(station, UINT_MAX, UINT_MAX) for _ in range(DOWNLINK_WINDOWS_MAX)
        ),
    )
