"""What a run used, as the node's usage receipt says it (docs/agent-format.md, R-rules).

Owns: the sandbox outcome → receipt outcome table, and the receipt's numbers from the ticket
and the run: cpu_core_seconds = ceil(fuel / the enrolled rate); storage_mb_seconds = the
ticket's storage_mb x the seconds it was held (from the run's start until the result was
downlinked, or until the run's end when nothing goes down); link_seconds = ceil(bytes x 8 /
(downlink_mbps x 10^6)); uplink_seconds copied from the ticket. An ABORTED receipt (the agent
lost the run, or reached the ticket after its end) uses nothing.

Also owns `conclude`: a run's outcome and result the one way both the agent and an audit
reach them (a module the sandbox refuses is a trap; an /out that cannot be packed is a trap;
a run over its output cap has no result, and its result_bytes are what it counted).

Does not own: signing (orbitq.ledger.receipts.sign_receipt), or when a receipt is made
(orbitq.clients.agent.agent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orbitq.clients.agent.bundle import OutputRefusedError, pack
from orbitq.clients.agent.errors import ModuleRefusedError
from orbitq.clients.agent.sandbox import Execution, Job, Limits, Outcome
from orbitq.ledger.receipts import Receipt, RunOutcome, cpu_core_seconds, link_seconds_of
from orbitq.ledger.tickets import Ticket

RUN_OUTCOME_OF: dict[Outcome, RunOutcome] = {
    Outcome.OK: RunOutcome.OK,
    Outcome.TRAP: RunOutcome.TRAP,
    Outcome.OUT_OF_FUEL: RunOutcome.OUT_OF_FUEL,
    Outcome.WALL_TIME: RunOutcome.WALL_TIME,
    Outcome.OUTPUT_TOO_LARGE: RunOutcome.OUTPUT_TOO_LARGE,
    Outcome.EXIT: RunOutcome.EXIT,
}
EXIT_CODE_MASK = 0xFFFF_FFFF  # a WASI exit status is a u32
NANOS_PER_SECOND = 1_000_000_000


def job_for(ticket: Ticket, wasm_path: Path, input_path: Path | None, run_dir: Path) -> Job:
    """The sandbox job of a ticket: its limits, and its fixed world (the clock stands at the
    ticket's start; random_get is seeded by the request id), on the node and in an audit."""
    return Job(
        wasm_path=wasm_path,
        wasm_sha256=ticket.workload_sha256,
        input_path=input_path,
        run_dir=run_dir,
        limits=Limits(
            fuel_max=ticket.fuel_max,
            run_seconds=float(ticket.run_seconds),
            output_bytes_max=ticket.output_bytes_max,
        ),
        clock_ns=ticket.start * NANOS_PER_SECOND,
        seed=bytes.fromhex(ticket.request_id),
    )


@dataclass(frozen=True)
class Usage:
    """How a run ended and what it used, as the agent's store records it."""

    outcome: RunOutcome
    exit_code: int
    fuel: int
    start: int
    end: int
    result_sha256: bytes | None
    result_bytes: int
    #: Bytes of the result the broker acknowledged (0 unless the outcome is OK).
    bytes_downlinked: int
    #: Until when the run's storage was held: the downlink's completion, else the end.
    held_until: int


def receipt_of(
    ticket: Ticket,
    ticket_sha256: bytes,
    usage: Usage,
    *,
    issued_at: int,
    fuel_per_core_second: int,
    runtime: str,
) -> Receipt:
    """The receipt claims of one run of `ticket`."""
    held_seconds = max(0, usage.held_until - usage.start)
    return Receipt(
        node=ticket.node,
        request_id=ticket.request_id,
        issued_at=issued_at,
        ticket_sha256=ticket_sha256,
        outcome=usage.outcome,
        exit_code=usage.exit_code & EXIT_CODE_MASK,
        fuel=usage.fuel,
        cpu_core_seconds=cpu_core_seconds(usage.fuel, fuel_per_core_second),
        storage_mb_seconds=0
        if usage.outcome == RunOutcome.ABORTED
        else ticket.storage_mb * held_seconds,
        bytes_downlinked=usage.bytes_downlinked,
        link_seconds=link_seconds_of(usage.bytes_downlinked, max(ticket.downlink_mbps, 1)),
        uplink_seconds=ticket.uplink_seconds,
        start=usage.start,
        end=max(usage.end, usage.start),
        result_sha256=usage.result_sha256,
        result_bytes=usage.result_bytes,
        runtime=runtime,
    )


def aborted(at: int) -> Usage:
    """The usage of a run the agent lost or could not make: nothing (an operator fault)."""
    return Usage(RunOutcome.ABORTED, 0, 0, at, at, None, 0, 0, at)


@dataclass(frozen=True)
class Concluded:
    """A run's outcome and result, as its receipt states them."""

    outcome: RunOutcome
    exit_code: int
    fuel: int
    result_sha256: bytes | None
    result_bytes: int
    detail: str


def conclude(run: Callable[[Job], Execution], job: Job, result_path: Path) -> Concluded:
    """Run `job` with `run` and pack its result to `result_path`. SandboxError (not the
    workload's fault) passes to the caller."""
    try:
        execution = run(job)
    except ModuleRefusedError as error:
        execution = Execution(Outcome.TRAP, 0, 0, 0, 0.0, str(error))
    outcome, detail = RUN_OUTCOME_OF[execution.outcome], execution.detail
    result_sha256, result_bytes = None, execution.output_bytes
    if outcome != RunOutcome.OUTPUT_TOO_LARGE:
        try:
            packed = pack(job.run_dir / "out", result_path)
            result_sha256, result_bytes = packed.sha256, packed.size
        except OutputRefusedError as error:
            outcome, detail, result_bytes = RunOutcome.TRAP, str(error), 0
    return Concluded(
        outcome, execution.exit_code, execution.fuel, result_sha256, result_bytes, detail
    )
