"""ReportReceipt: a node's signed usage receipt, verified, then settled — or refused.

Owns the checks, in order; each refusal settles nothing, is recorded (`receipt_refusals`) with
its reason and logged, and answers with its own status:

- `malformed` (INVALID_ARGUMENT): not a COSE_Sign1 receipt (docs/agent-format.md R-rules);
- `bad_signature` (INVALID_ARGUMENT): it does not verify under the node's enrolled key;
- `unknown_key` (INVALID_ARGUMENT): signed with another key id (another node's, an old one);
- `wrong_node` (PERMISSION_DENIED): its issuer is another node;
- `unknown_request` (NOT_FOUND): no request has its id;
- `another_node` (PERMISSION_DENIED): the request is not placed on this node;
- `settled` (ALREADY_EXISTS): the request was settled by another receipt;
- `ended` (FAILED_PRECONDITION): the request ended without this receipt;
- `not_started` (FAILED_PRECONDITION): it is not running (nor placed past its start);
- `wrong_ticket` (INVALID_ARGUMENT): its ticket digest is not the request's ticket;
- `over_limits` (INVALID_ARGUMENT): fuel over the ticket's fuel_max; result bytes over the
  output limit while the outcome is not "output too large";
- `wrong_usage` (INVALID_ARGUMENT): cpu core-seconds other than ceil(fuel / the enrolled
  rate), link seconds other than its bytes at the node's downlink rate, uplink seconds other
  than the ticket's, another runtime than the enrolled one;
- `wrong_times` (INVALID_ARGUMENT): a start before the ticket's start less
  RECEIPT_SKEW_SECONDS, an end before the start or after the deadline + the receipt grace;
- `no_result` (FAILED_PRECONDITION): an OK outcome names a result not stored complete with
  that digest and size.

Then the request ends by the receipt, and is settled, in ONE ledger item (settlement.
end_and_settle): the receipt's entry in the signed log, the settling transfers, and — attached to
the item, in its transaction — the receipt's row, the transitions (a PLACED request past its
start is started first) and the reservation's close; one group commit, all or nothing. OK →
COMPLETED; a workload outcome (trap,
out of fuel, wall time, output too large, exit) → FAILED, the workload at fault; ABORTED →
FAILED, the operator at fault (refunded in full). The charge is `charge_of(receipt)` capped at
the reservation, settled against the receipt (one ledger item: the receipt, then the
transfers whose user_data is SHA-256 of the receipt). The same receipt again answers the same
(idempotent per request). When the ledger refuses a transfer (say the reservation timed out),
the request ends on its own and its settlement is retried by the scheduling loop's pass over
owed reservations and by the agent's retry.

A crash point for tests (tests/agent/test_broker_crash.py, orbitq.services.crashpoint): with
ORBITQ_CRASH_AT=receipt.settled:N in the broker's environment, the process kills itself with
SIGKILL right after the Nth receipt it accepts is stored and settled (one commit) and before the
agent hears so: the agent keeps it in
its outbox and reports it again to the restarted broker, which must answer it without settling
it twice — kill -9 at the worst moment left, on demand rather than by timing.

Does not own: the receipt format (orbitq.ledger.receipts), the transfers
(requests.reservations) or gating and permissions (service.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from orbitq.ledger.receipts import (
    Receipt,
    ReceiptError,
    ReceiptVerifier,
    RunOutcome,
    charge_of,
    cpu_core_seconds,
    link_seconds_of,
    receipt_digest,
)
from orbitq.ledger.store import AttachedWriteError
from orbitq.services import crashpoint
from orbitq.services.agents.tables import RECEIPT_REFUSALS
from orbitq.services.agents.tickets import StoredTicket, Tickets
from orbitq.services.blobs.uploads import ResultUploads
from orbitq.services.clock import NANOS_PER_SECOND
from orbitq.services.constellation import NodeRecord
from orbitq.services.db.engine import write_transaction
from orbitq.services.errors import (
    AlreadyExistsError,
    BrokerError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)
from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import Fault, ReceiptFacts, RequestState, StoredRequest
from orbitq.services.requests.reservations import Reservations, capped
from orbitq.services.requests.settlement import end_and_settle, resolve
from orbitq.services.requests.store import RequestStore
from orbitq.services.scheduler import Cost, rfc3339

log = logging.getLogger(__name__)

S = RequestState
# A receipt may say its run started this long before the ticket's start (agents' clocks).
RECEIPT_SKEW_SECONDS = 60
RECEIPT_BYTES_MAX = 4096
DETAIL_CHARS_MAX = 500
# Receipt verifiers kept, one per enrolled node key (past it, all are dropped and rebuilt).
VERIFIERS_KEPT_MAX = 4096
WORKLOAD_OUTCOMES = frozenset(
    {
        RunOutcome.TRAP,
        RunOutcome.OUT_OF_FUEL,
        RunOutcome.WALL_TIME,
        RunOutcome.OUTPUT_TOO_LARGE,
        RunOutcome.EXIT,
    }
)
_STATUS_OF_REASON: dict[str, type[BrokerError]] = {
    "malformed": InvalidArgumentError,
    "bad_signature": InvalidArgumentError,
    "unknown_key": InvalidArgumentError,
    "wrong_node": PermissionDeniedError,
    "unknown_request": NotFoundError,
    "another_node": PermissionDeniedError,
    "not_started": FailedPreconditionError,
    "ended": FailedPreconditionError,
    "settled": AlreadyExistsError,
    "wrong_ticket": InvalidArgumentError,
    "over_limits": InvalidArgumentError,
    "wrong_usage": InvalidArgumentError,
    "wrong_times": InvalidArgumentError,
    "no_result": FailedPreconditionError,
}


class RefusedError(Exception):
    """A receipt refused for `reason` (a key of _STATUS_OF_REASON), with a message."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        assert reason in _STATUS_OF_REASON, reason
        self.reason = reason
        self.detail = detail
        self.request_id = ""  # the request the receipt names, once it could be read

    def error(self) -> BrokerError:
        return _STATUS_OF_REASON[self.reason](f"receipt refused ({self.reason}): {self.detail}")


@dataclass(frozen=True, slots=True)
class Settled:
    request: StoredRequest
    digest: bytes
    entry_index: int


class ReceiptDesk:
    def __init__(
        self,
        engine: sa.Engine,
        store: RequestStore,
        reservations: Reservations,
        tickets: Tickets,
        uploads: ResultUploads,
        receipt_grace: int,
        now_ns: Callable[[], int],
        announce: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._store = store
        self._reservations = reservations
        self._tickets = tickets
        self._uploads = uploads
        self._grace = receipt_grace
        self._now_ns = now_ns
        self._announce = announce
        # Its get, set and clear are each atomic: a race at worst builds a verifier twice.
        self._verifiers: dict[tuple[bytes, bytes], ReceiptVerifier] = {}

    def report(self, node_of: Callable[[sa.Connection], NodeRecord], envelope: bytes) -> Settled:
        """Verify and settle `envelope` from the agent of the node `node_of` reads (and gates)
        — see the module docstring."""
        digest = receipt_digest(envelope)
        refusal: RefusedError | None = None
        # The checks' reads (the node's world version, the request, its ticket) in one read
        # connection, closed before the settlement is written.
        with self._engine.connect() as connection:
            node = node_of(connection)
            try:
                receipt = self._open(node, envelope)
                try:
                    request = self._check(connection, node, receipt, digest)
                except RefusedError as refused:
                    refused.request_id = receipt.request_id
                    raise
            except RefusedError as refused:
                refusal = refused
        if refusal is not None:
            self._record_refusal(node.id, refusal, digest)
            raise refusal.error() from None
        if request.receipt_digest == digest:
            return self._settle(request)  # the same receipt again: the same answer
        ended, entry_index = self._end(node, request, receipt, envelope, digest)
        crashpoint.reached("receipt.settled")
        if entry_index is not None or (not ended.reservation_open and not ended.charged):
            return Settled(ended, digest, entry_index or 0)
        return self._settle(ended)

    # -- checks --------------------------------------------------------------------------------

    def _open(self, node: NodeRecord, envelope: bytes) -> Receipt:
        agent = node.agent
        assert agent is not None
        if len(envelope) > RECEIPT_BYTES_MAX:
            raise RefusedError(
                "malformed", f"{len(envelope):,} bytes; at most {RECEIPT_BYTES_MAX:,}"
            )
        # A verifier per enrolled key (parsing the key and encoding its header is a third of
        # a verification): keyed by the key itself, so a re-enrolled node's new key gets a new
        # one and its old key's is never used for it again.
        pinned = (agent.public_key, agent.key_id)
        verifier = self._verifiers.get(pinned)
        if verifier is None:
            verifier = ReceiptVerifier(agent.public_key, agent.key_id)
            if len(self._verifiers) >= VERIFIERS_KEPT_MAX:
                self._verifiers.clear()
            self._verifiers[pinned] = verifier
        try:
            return verifier.open(envelope)
        except ReceiptError as error:
            reason = error.reason if error.reason in _STATUS_OF_REASON else "malformed"
            raise RefusedError(
                reason, f"{error} (node {node.id}'s enrolled key id is {agent.key_id.hex()})"
            ) from None

    def _check(
        self, connection: sa.Connection, node: NodeRecord, receipt: Receipt, digest: bytes
    ) -> StoredRequest:
        if receipt.node != node.id:
            raise RefusedError("wrong_node", f"it is node {receipt.node}'s; a node reports its own")
        request = self._store.get_on(connection, receipt.request_id)
        if request is None:
            raise RefusedError("unknown_request", f"no request {receipt.request_id}")
        placement = request.placement
        if placement is None or placement.node != node.id:
            raise RefusedError(
                "another_node", f"request {request.id} is not placed on node {node.id}"
            )
        if request.receipt_digest is not None:
            if request.receipt_digest == digest:
                return request
            raise RefusedError(
                "settled",
                f"request {request.id} was settled by another receipt"
                f" ({request.receipt_digest.hex()})",
            )
        now_s = self._now_ns() // NANOS_PER_SECOND
        if request.state.terminal:
            raise RefusedError(
                "ended", f"request {request.id} ended {request.state.label}: {request.reason}"
            )
        if request.state is not S.RUNNING and not (
            request.state is S.PLACED and placement.start <= now_s
        ):
            raise RefusedError(
                "not_started",
                f"request {request.id} is {request.state.label} (start {rfc3339(placement.start)})",
            )
        ticket = self._tickets.current_on(connection, request.id)
        if ticket is None or ticket.digest != receipt.ticket_sha256:
            raise RefusedError(
                "wrong_ticket",
                f"its ticket digest {receipt.ticket_sha256.hex()} is not request {request.id}'s"
                f" ticket ({ticket.digest.hex() if ticket else 'none was issued'})",
            )
        self._check_usage(node, request, ticket, receipt)
        return request

    def _check_usage(
        self, node: NodeRecord, request: StoredRequest, ticket: StoredTicket, receipt: Receipt
    ) -> None:
        agent = node.agent
        assert agent is not None
        outcome = receipt.outcome
        if receipt.fuel > ticket.fuel_max:
            raise RefusedError(
                "over_limits", f"fuel {receipt.fuel:,} is over the ticket's {ticket.fuel_max:,}"
            )
        cpu = cpu_core_seconds(receipt.fuel, agent.fuel_per_core_second)
        if receipt.cpu_core_seconds != cpu:
            raise RefusedError(
                "wrong_usage",
                f"cpu_core_seconds {receipt.cpu_core_seconds:,} is not ceil(fuel {receipt.fuel:,}"
                f" / the enrolled rate {agent.fuel_per_core_second:,}) = {cpu:,}",
            )
        if (
            receipt.result_bytes > ticket.output_bytes_max
            and outcome is not RunOutcome.OUTPUT_TOO_LARGE
        ):
            raise RefusedError(
                "over_limits",
                f"result_bytes {receipt.result_bytes:,} is over the ticket's output limit"
                f" {ticket.output_bytes_max:,} and the outcome is not output-too-large",
            )
        link = link_seconds_of(receipt.bytes_downlinked, node.capacity.downlink_mbps)
        if receipt.link_seconds != link:
            raise RefusedError(
                "wrong_usage",
                f"link_seconds {receipt.link_seconds:,} is not {receipt.bytes_downlinked:,}"
                f" bytes at {node.capacity.downlink_mbps:,} Mbit/s = {link:,}",
            )
        if receipt.uplink_seconds != ticket.uplink_seconds:
            raise RefusedError(
                "wrong_usage",
                f"uplink_seconds {receipt.uplink_seconds:,} is not the ticket's"
                f" {ticket.uplink_seconds:,}",
            )
        if receipt.runtime != agent.runtime:
            raise RefusedError(
                "wrong_usage",
                f"runtime {receipt.runtime!r} is not the enrolled {agent.runtime!r}",
            )
        latest = request.spec.deadline + self._grace
        if receipt.start < ticket.start_s - RECEIPT_SKEW_SECONDS or receipt.end < receipt.start:
            raise RefusedError(
                "wrong_times",
                f"the run [{receipt.start}, {receipt.end}] does not begin at or after the"
                f" ticket's start {ticket.start_s} (less {RECEIPT_SKEW_SECONDS} s)",
            )
        if receipt.end > latest:
            raise RefusedError(
                "wrong_times",
                f"the run ended at {rfc3339(receipt.end)}, after the deadline + grace"
                f" {rfc3339(latest)}",
            )
        if outcome is RunOutcome.OK and receipt.result_sha256 is not None:
            stored = self._uploads.stored_result(request.id)
            if stored is None or (stored.sha256, stored.size) != (
                receipt.result_sha256,
                receipt.result_bytes,
            ):
                raise RefusedError(
                    "no_result",
                    f"the result sha256:{receipt.result_sha256.hex()} ({receipt.result_bytes:,}"
                    " bytes) is not stored complete: downlink it (OpenResult, PutResultChunk)"
                    " before reporting the receipt",
                )

    # -- the end of the request ----------------------------------------------------------------

    def _end(
        self,
        node: NodeRecord,
        request: StoredRequest,
        receipt: Receipt,
        envelope: bytes,
        digest: bytes,
    ) -> tuple[StoredRequest, int | None]:
        agent = node.agent
        assert agent is not None
        now_ns = self._now_ns()
        outcome = receipt.outcome
        facts = ReceiptFacts(
            digest=digest,
            envelope=envelope,
            node=node.id,
            node_public_key=agent.public_key,
            key_entry_index=agent.key_entry_index,
            outcome=int(outcome),
            result_digest=receipt.result_sha256.hex() if receipt.result_sha256 else None,
            result_bytes=receipt.result_bytes,
            received_ns=now_ns,
        )
        used = charge_of(receipt)
        charge = capped(Cost(used.cpu, used.storage, used.link), request.reserved)
        final = _final_move(request, outcome, facts, charge, node.id)
        moves = [final]
        if request.state is S.PLACED:
            started = Move(
                request.id,
                frozenset({S.PLACED}),
                S.RUNNING,
                f"started on node {node.id} (its usage receipt came first)",
            )
            moves = [started, final]
        try:
            # One ledger item: the receipt's entry, its transfers, and (attached) the moves and
            # the reservation's close — one group commit, all or nothing.
            done = end_and_settle(self._store, self._reservations, request, moves, envelope, now_ns)
            if done is not None:
                self._announce()
                return done
            # The ledger refused a transfer (nothing of the request was written): end it on
            # its own; the settlement is then retried (`_settle`, the owed pass).
            ended = self._store.apply(moves, now_ns)[-1]
        except AttachedWriteError as error:
            log.info("request %s: %s", request.id, error)  # moved on: answered below
            ended = None
        self._announce()
        if ended is not None:
            return ended, None
        # Moved on meanwhile (a concurrent report of the same receipt, or a fault pass):
        # answer from what is stored.
        current = self._store.get(request.id)
        assert current is not None
        if current.receipt_digest != digest:
            raise FailedPreconditionError(
                f"request {request.id} ended {current.state.label} while its receipt was"
                f" checked: {current.reason}"
            )
        return current, None

    def _settle(self, request: StoredRequest) -> Settled:
        assert request.receipt_digest is not None
        if request.reservation_open:
            resolve(self._store, self._reservations, [request], self._now_ns())
        current = self._store.get(request.id)
        found = self._store.receipt(request.id)
        assert current is not None
        assert found is not None
        facts, entry_index = found
        if current.reservation_open:
            raise UnavailableError(
                f"the receipt of request {request.id} is accepted; its settlement is not in the"
                " ledger yet: report it again shortly"
            )
        return Settled(current, facts.digest, entry_index or 0)

    def _record_refusal(self, node: str, refused: RefusedError, digest: bytes) -> None:
        log.warning(
            "node %s: receipt %s refused (%s): %s",
            node,
            digest.hex(),
            refused.reason,
            refused.detail,
        )
        with write_transaction(self._engine) as connection:
            connection.execute(
                sa.insert(RECEIPT_REFUSALS).values(
                    node=node,
                    request_id=refused.request_id,
                    digest=digest,
                    reason=refused.reason,
                    detail=refused.detail[:DETAIL_CHARS_MAX],
                    at_ns=self._now_ns(),
                )
            )


def _final_move(
    request: StoredRequest, outcome: RunOutcome, facts: ReceiptFacts, charge: Cost, node: str
) -> Move:
    expected = frozenset({S.RUNNING})
    what = f"cpu {charge.cpu:,}, storage {charge.storage:,}, link {charge.link:,}"
    if outcome is RunOutcome.OK:
        return Move(
            request.id,
            expected,
            S.COMPLETED,
            f"completed on node {node}: usage receipt {facts.digest.hex()[:16]}… verified;"
            f" charged {what}",
            settled=charge,
            receipt=facts,
        )
    if outcome in WORKLOAD_OUTCOMES:
        return Move(
            request.id,
            expected,
            S.FAILED,
            f"the workload failed on node {node} ({outcome.name.lower()}); charged what it"
            f" used: {what}",
            settled=charge,
            fault=Fault.WORKLOAD,
            receipt=facts,
        )
    return Move(
        request.id,
        expected,
        S.FAILED,
        f"node {node}'s agent could not run it ({outcome.name.lower()}); the reservation is"
        " refunded (operator fault)",
        fault=Fault.OPERATOR,
        receipt=facts,
    )
