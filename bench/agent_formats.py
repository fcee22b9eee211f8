"""Ticket verification onboard against a raw Ed25519 verification of the same bytes.

An agent verifies every ticket it pulls during a short contact, on a small CPU. The target: a
whole `TicketVerifier.open` (envelope, signature, claim set decoded and checked, the claims of
T8 against the node, the time and the replay set) runs at ≥ 0.7 x the rate of
`Ed25519PublicKey.verify(signature, Sig_structure)` over the same bytes — i.e. the format and
its checks cost at most ~40 % on top of the signature itself. Receipts, which the broker opens
(`open_receipt` through a `ReceiptVerifier`), are measured the same way, for information.

Method: CPU time of this thread (`time.thread_time`: a neighbour's load does not count),
ROUNDS interleaved pairs of batches (BATCH raw verifications, then BATCH opens of the same
envelope), the median of the per-round ratios; a sample ticket with two downlink windows and an
input, as the broker issues them.

Environment: ORBITQ_BENCH_AGENT_ROUNDS overrides ROUNDS (e.g. for a quick run).
"""

from __future__ import annotations

import gc
import hashlib
import os
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import publish
from orbitq.ledger.cose import Sign1Verifier, bstr_head, protected_header
from orbitq.ledger.note import key_id
from orbitq.ledger.receipts import Receipt, ReceiptVerifier, RunOutcome, sign_receipt
from orbitq.ledger.tickets import DownlinkWindow, Ticket, TicketVerifier, sign_ticket

ROUNDS = int(os.environ.get("ORBITQ_BENCH_AGENT_ROUNDS", "25"))
BATCH = 200
TARGET_RATIO = 0.7
ORIGIN = "bench.orbitq/ledger"
NODE = "starlink-31234"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
RATE = 15_000_000_000


def _ticket() -> Ticket:
    return Ticket(
        issuer=ORIGIN,
        node=NODE,
        request_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        issued_at=NOW,
        not_before=NOW - 60,
        expires=NOW + 7200,
        start=NOW + 600,
        end=NOW + 4200,
        run_seconds=600,
        cpu_millicores=1000,
        storage_mb=256,
        output_bytes_max=8 << 20,
        fuel_max=600 * RATE,
        downlink=(
            DownlinkWindow("gs-svalbard", NOW + 5400, NOW + 5880),
            DownlinkWindow("gs-awarua", NOW + 9000, NOW + 9420),
        ),
        workload_sha256=hashlib.sha256(b"detect.wasm").digest(),
        input_sha256=hashlib.sha256(b"tile.bin").digest(),
        input_bytes=1_572_880,
        downlink_mbps=100,
        uplink_seconds=2,
    )


def _receipt(ticket_envelope: bytes) -> Receipt:
    return Receipt(
        node=NODE,
        request_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        issued_at=NOW + 4300,
        ticket_sha256=hashlib.sha256(ticket_envelope).digest(),
        outcome=RunOutcome.OK,
        exit_code=0,
        fuel=1_234_567_890_123,
        cpu_core_seconds=83,
        storage_mb_seconds=256 * 3600,
        bytes_downlinked=4_000_000,
        link_seconds=1,
        uplink_seconds=2,
        start=NOW + 600,
        end=NOW + 700,
        result_sha256=hashlib.sha256(b"result").digest(),
        result_bytes=4_000_000,
        runtime="wasmtime 51.0.0",
    )


def _raw_verify(private: Ed25519PrivateKey, kid: bytes, envelope: bytes) -> Callable[[], None]:
    """One raw Ed25519 verification of the envelope's own Sig_structure bytes."""
    public = private.public_key()
    payload = Sign1Verifier(public.public_bytes_raw(), kid).payload(envelope)
    protected = protected_header(kid)
    to_sign = (
        b"\x84\x6aSignature1"
        + bstr_head(len(protected))
        + protected
        + b"\x40"
        + bstr_head(len(payload))
        + payload
    )
    signature = envelope[-64:]
    public.verify(signature, to_sign)  # the bytes are right: this is what the envelope signs

    def verify() -> None:
        public.verify(signature, to_sign)

    return verify


def _ratio(raw: Callable[[], None], opened: Callable[[], object]) -> dict[str, float]:
    """Median over ROUNDS of raw CPU time / open CPU time, batches interleaved."""
    ratios: list[float] = []
    raw_us: list[float] = []
    open_us: list[float] = []
    batch = range(BATCH)
    gc.collect()
    gc.disable()
    try:
        for _ in range(ROUNDS):
            started = time.thread_time()
            for _ in batch:
                raw()
            middle = time.thread_time()
            for _ in batch:
                opened()
            ended = time.thread_time()
            raw_us.append((middle - started) / BATCH * 1e6)
            open_us.append((ended - middle) / BATCH * 1e6)
            ratios.append((middle - started) / (ended - middle))
    finally:
        gc.enable()
    return {
        "raw_verify_us": round(statistics.median(raw_us), 1),
        "open_us": round(statistics.median(open_us), 1),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
    }


def main() -> None:
    broker = Ed25519PrivateKey.generate()
    broker_kid = key_id(ORIGIN, broker.public_key().public_bytes_raw())
    ticket = _ticket()
    envelope = sign_ticket(ticket, broker, broker_kid)
    verifier = TicketVerifier(broker.public_key().public_bytes_raw(), broker_kid, ORIGIN)
    already_run: set[str] = set()

    def open_ticket() -> Ticket:
        return verifier.open(
            envelope, node=NODE, now=NOW, skew_seconds=30, already_run=already_run.__contains__
        )

    assert open_ticket() == ticket
    ticket_figures = _ratio(_raw_verify(broker, broker_kid, envelope), open_ticket)

    node = Ed25519PrivateKey.generate()
    node_kid = key_id(NODE, node.public_key().public_bytes_raw())
    receipt = _receipt(envelope)
    receipt_envelope = sign_receipt(receipt, node, node_kid)
    receipts = ReceiptVerifier(node.public_key().public_bytes_raw(), node_kid)
    assert receipts.open(receipt_envelope) == receipt
    receipt_figures = _ratio(
        _raw_verify(node, node_kid, receipt_envelope), lambda: receipts.open(receipt_envelope)
    )
    ratio = ticket_figures["ratio"]
    publish(
        "agent_formats",
        {
            "benchmark": "agent_formats",
            "rounds": ROUNDS,
            "batch": BATCH,
            "ticket_bytes": len(envelope),
            "ticket_raw_verify_us": ticket_figures["raw_verify_us"],
            "ticket_open_us": ticket_figures["open_us"],
            "ticket_verify_ratio": ratio,
            "ticket_verify_ratio_min": ticket_figures["ratio_min"],
            "ticket_verify_ratio_max": ticket_figures["ratio_max"],
            "target_ticket_verify_ratio": TARGET_RATIO,
            "receipt_bytes": len(receipt_envelope),
            "receipt_raw_verify_us": receipt_figures["raw_verify_us"],
            "receipt_open_us": receipt_figures["open_us"],
            "receipt_verify_ratio": receipt_figures["ratio"],
            "meets_targets": {"ticket_verify_ratio": ratio >= TARGET_RATIO},
        },
    )


if __name__ == "__main__":
    main()
