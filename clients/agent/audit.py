"""Re-running a receipt on the ground: `orbitq request audit ID`.

Owns the check: the ticket verifies under the broker's ticket key; the receipt verifies under
the node key that signed it (kid from the ticket's node) and binds that ticket (its SHA-256);
the receipt was counted under this machine's runtime (fuel is counted per wasmtime version:
another version is refused, naming both); the module and input match the ticket's digests;
then the run is made again in the same sandbox (a child process, the ticket's limits, the same
fixed clock and random seed) and its fuel, outcome and result digest are compared with the
receipt's. A run stopped by its wall time is reproduced when the re-run is stopped too: both
are charged their whole fuel.

Does not own: fetching the evidence (the CLI), the sandbox.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from orbitq.clients.agent.isolate import run_isolated
from orbitq.clients.agent.sandbox import runtime
from orbitq.clients.agent.usage import conclude, job_for
from orbitq.ledger.note import key_id
from orbitq.ledger.receipts import Receipt, RunOutcome, open_receipt
from orbitq.ledger.tickets import Ticket, open_ticket, ticket_digest


class AuditRefusedError(ValueError):
    """The evidence cannot be re-run here; the message says why."""


@dataclass(frozen=True)
class Audit:
    ticket: Ticket
    receipt: Receipt
    fuel: int
    outcome: RunOutcome
    result_sha256: bytes | None
    #: What differs, one line each (empty: reproduced).
    differences: list[str] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        return not self.differences


def audit(
    *,
    ticket_envelope: bytes,
    receipt_envelope: bytes,
    ticket_key: tuple[bytes, bytes],
    node_public_key: bytes,
    module: bytes,
    input_bytes: bytes | None,
    work_dir: Path,
) -> Audit:
    """Re-run one receipt's run in `work_dir`. `ticket_key` is (public key, kid) of the
    broker's ticket key. AuditRefusedError when the evidence does not hold together."""
    ticket = open_ticket(ticket_envelope, *ticket_key)
    receipt = open_receipt(receipt_envelope, node_public_key, key_id(ticket.node, node_public_key))
    if receipt.outcome == RunOutcome.ABORTED:
        raise AuditRefusedError("the receipt says ABORTED: nothing ran, so nothing to re-run")
    if receipt.ticket_sha256 != ticket_digest(ticket_envelope):
        raise AuditRefusedError("the receipt does not bind this ticket (ticket_sha256 differs)")
    if receipt.runtime != runtime():
        raise AuditRefusedError(
            f"the receipt was counted under {receipt.runtime}; this machine has {runtime()}:"
            " fuel is counted per version, re-run it where that version is installed"
        )
    if hashlib.sha256(module).digest() != ticket.workload_sha256:
        raise AuditRefusedError("the module fetched does not match the ticket's workload")
    if (None if input_bytes is None else hashlib.sha256(input_bytes).digest()) != (
        ticket.input_sha256
    ):
        raise AuditRefusedError("the input fetched does not match the ticket's input")
    work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    wasm_path = work_dir / "module.wasm"
    wasm_path.write_bytes(module)
    input_path = None
    if input_bytes is not None:
        input_path = work_dir / "input"
        input_path.write_bytes(input_bytes)
    job = job_for(ticket, wasm_path, input_path, work_dir / "run")
    job.run_dir.mkdir(mode=0o700, exist_ok=True)
    concluded = conclude(
        lambda job: run_isolated(job, work_dir / "modules"), job, work_dir / "result"
    )
    differences = []
    if concluded.outcome != receipt.outcome:
        differences.append(
            f"outcome: the receipt says {receipt.outcome.label}, the re-run"
            f" {concluded.outcome.label}"
        )
    if concluded.fuel != receipt.fuel:
        differences.append(f"fuel: the receipt says {receipt.fuel}, the re-run {concluded.fuel}")
    if concluded.result_sha256 != receipt.result_sha256:
        differences.append(
            f"result digest: the receipt says {_hex(receipt.result_sha256)}, the re-run"
            f" {_hex(concluded.result_sha256)}"
        )
    return Audit(
        ticket,
        receipt,
        concluded.fuel,
        concluded.outcome,
        concluded.result_sha256,
        differences,
    )


def _hex(digest: bytes | None) -> str:
    return "none" if digest is None else f"sha256:{digest.hex()}"
