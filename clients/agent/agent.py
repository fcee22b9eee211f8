"""The node agent's loop: one `step(now)` does everything due by `now` (docs/agent.md, "The
loop"); `run_forever` repeats it, sleeping until the next instant something is due.

A step, in order:
1. once, at the first step: crash recovery (a run started without an end is run again if its
   ticket has not expired, else it gets an ABORTED receipt);
2. if the link is up (the ground link is "always", or `now` is inside a known contact window,
   or no window is known and a probe is due): a heartbeat (with the refusals not yet
   acknowledged) once per contact, receipts from the outbox, tickets pulled and verified
   onboard, the blobs they name fetched;
3. the tickets whose start has come: each run in the sandbox, recorded, then its receipt
   signed (or its result queued for the downlink first);
4. if the link is up: results downlinked inside their tickets' downlink windows, paced at the
   node's rate; a result fully down gets its receipt signed and reported;
5. finished tickets and unused blobs forgotten once expired.

Owns: the order above, ticket acceptance (TicketVerifier; a replay is a request id this node
already ran; a re-pull of the same envelope is nothing new; a newer ticket for a request not
yet run replaces the older one), what each failure of the link means, and the next due instant.

Does not own: the sandbox (orbitq.clients.agent.sandbox), the store's tables
(orbitq.clients.agent.store), the receipt's numbers (orbitq.clients.agent.usage), the
broker's calls (orbitq.clients.agent.link).
"""

from __future__ import annotations

import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.timestamp_pb2 import Timestamp

from orbitq.clients.agent.blobs import BlobCache, BlobRefusedError
from orbitq.clients.agent.errors import SandboxError
from orbitq.clients.agent.link import BrokerLink, LinkDownError
from orbitq.clients.agent.pacer import Pacer
from orbitq.clients.agent.sandbox import Execution, Job
from orbitq.clients.agent.store import (
    AgentStore,
    ContactRow,
    DownlinkRow,
    RefusalRow,
    RunRow,
    TicketRow,
)
from orbitq.clients.agent.usage import Usage, aborted, conclude, job_for, receipt_of
from orbitq.clients.errors import BrokerCallError
from orbitq.ledger.note import key_id
from orbitq.ledger.receipts import RunOutcome, sign_receipt
from orbitq.ledger.tickets import (
    RefusalReason,
    Ticket,
    TicketRefused,
    TicketVerifier,
    peek_request_id,
    ticket_digest,
)
from orbitq.v1 import agent_pb2

NANOS_PER_SECOND = 1_000_000_000
TICKETS_PULLED_MAX = 100
REFUSALS_SENT_MAX = 100
RUNNING_SENT_MAX = 1000
RESULT_CHUNK_BYTES = 1024 * 1024  # PutResultChunk's largest chunk
# Blob bytes fetched in one step at most: a step stays bounded on a slow link.
FETCH_BYTES_PER_STEP_MAX = 64 * 1024 * 1024
# A receipt the broker refuses this many times (not counting a down link) leaves the outbox.
RECEIPT_REFUSALS_MAX = 5
# The longest a run_forever wait, in real seconds: signals and clock changes are seen this soon.
WAIT_SECONDS_MAX = 5.0
WAIT_SECONDS_MIN = 0.005
# When nothing is due, look again after this many clock seconds.
IDLE_SECONDS = 300
# Finished tickets and unused blobs are looked for at most this often (clock seconds).
PRUNE_INTERVAL_SECONDS = 300
# Ticket claims kept in memory, so a step does not verify every stored envelope again.
TICKETS_CACHED_MAX = 1024
# The furthest ahead a broker's `next_pull_at` is taken (clock seconds): a wrong answer
# cannot keep the agent from pulling for longer (the broker's notice is at most an hour).
NEXT_PULL_AHEAD_MAX = 3_600


class Clock(Protocol):
    """orbitq's clock protocol (the services' clocks satisfy it): aware UTC instants."""

    def now(self) -> datetime: ...


# Runs one job: the child-process sandbox (orbitq agent run) or Sandbox.run (the simulator).
Runner = Callable[[Job], Execution]
Log = Callable[[str], None]


@dataclass(frozen=True)
class AgentSettings:
    node: str
    key: Ed25519PrivateKey
    verifier: TicketVerifier
    fuel_per_core_second: int
    runtime: str
    #: Talk to the broker at any time, not only inside contact windows.
    ground_link_always: bool = False
    #: Clock skew tolerated when checking a ticket's times.
    skew_seconds: int = 60
    #: How often to pull tickets while the link is up (clock seconds).
    pull_interval_seconds: int = 10
    #: How often to send a heartbeat when the link is always up (else: once per contact).
    heartbeat_interval_seconds: int = 60
    #: When no contact window is known, how often to try the broker (clock seconds).
    probe_interval_seconds: int = 60
    #: The pacer's burst, in seconds of the downlink rate (the simulator sets its step).
    downlink_burst_seconds: float = 1.0


@dataclass
class _Session:
    """What the agent did in the current contact (forgotten when the link goes down)."""

    contact: str
    heartbeat_at: float | None = None
    pulled_at: float | None = None
    opened: set[str] = field(default_factory=set)


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        store: AgentStore,
        link: BrokerLink,
        data_dir: Path,
        runner: Runner,
        *,
        clock: Clock,
        log: Log = lambda _line: None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.link = link
        self.runs_dir = data_dir / "runs"
        self.blobs = BlobCache(data_dir / "blobs", store)
        self.runner = runner
        self.clock = clock
        self.log = log
        self._kid = key_id(settings.node, settings.key.public_key().public_bytes_raw())
        self._recovered = False
        self._session: _Session | None = None
        self._probe_at = 0.0
        self._probe_logged = False
        self._pacer: Pacer | None = None
        self._tickets: OrderedDict[bytes, Ticket] = OrderedDict()
        self._pruned_at: float | None = None
        # The broker's promise at the last pull: no ticket becomes due before this (clock
        # seconds). It outlives the session (it is about the node, not a contact); None:
        # the broker gives none, pull every `pull_interval_seconds` while linked.
        self._next_pull: float | None = None
        # The contact rows last written to the store by this process (None: none yet).
        self._contacts_stored: list[ContactRow] | None = None

    # --- the step -------------------------------------------------------------------------

    def step(self, now: datetime | None = None) -> datetime:
        """Do everything due by `now` (default: the clock's now); returns when next to step."""
        moment = (now or self.clock.now()).timestamp()
        if not self._recovered:
            self._recover(int(moment))
            self._recovered = True
        if self._link_up(moment):
            self._guarded(self._talk, moment)
            probing = self._session is not None and self._session.contact == "probe"
            if probing and self.store.contacts(ending_after=int(moment)):
                self._session = None  # a probe answered: now the plan it brought says when
        self._run_due(moment)
        if self._session is not None:
            self._guarded(self._downlink, moment)
        self._finish_ran(moment)
        if self._session is not None:
            self._guarded(self._report_outbox, moment)
        self._prune(int(moment))
        return datetime.fromtimestamp(self._next_due(moment), tz=UTC)

    def run_forever(self, stop: threading.Event, *, clock_rate: float = 1.0) -> None:
        """Step until `stop` is set, waiting (bounded) until the next due instant. The wait is
        in real seconds: `clock_rate` is how many clock seconds pass per real second."""
        while not stop.is_set():
            due = self.step()
            ahead = (due - self.clock.now()).total_seconds() / clock_rate
            stop.wait(min(max(ahead, WAIT_SECONDS_MIN), WAIT_SECONDS_MAX))

    def _guarded(self, action: Callable[[float], None], moment: float) -> None:
        """Run one phase that talks to the broker; a failure ends the session until the next
        probe (LinkDownError is expected outside contacts; any other refusal is logged)."""
        try:
            action(moment)
        except (LinkDownError, BrokerCallError) as error:
            if isinstance(error, BrokerCallError):
                self.log(f"broker refused ({error.code.name}): {error.details}")
            elif self._session is not None and (
                self._session.contact != "probe" or not self._probe_logged
            ):
                self._probe_logged = True  # one line for probes that find no contact
                self.log(f"link down: {error}")
            self._session = None
            self._probe_at = moment + self.settings.probe_interval_seconds
            if self._pacer is not None:
                self._pacer.idle()

    # --- the link -------------------------------------------------------------------------

    def _link_up(self, moment: float) -> bool:
        """Whether to talk now; opens a session for the current contact."""
        contact = self._current_contact(moment)
        if contact is None:
            self._session = None
            return False
        if self._session is None or self._session.contact != contact:
            self._session = _Session(contact)
        return True

    def _current_contact(self, moment: float) -> str | None:
        if self.settings.ground_link_always:
            return "always" if self._session is not None or moment >= self._probe_at else None
        contacts = self.store.contacts(ending_after=int(moment))
        if contacts and contacts[0].start <= moment:
            return contacts[0].id
        if not contacts and moment >= self._probe_at:
            return "probe"  # no window known: try; the broker names the next one, or refuses
        return None

    def _talk(self, moment: float) -> None:
        session = self._session
        assert session is not None
        if self._heartbeat_due(session, moment):
            self._heartbeat(moment)
            session.heartbeat_at = moment
        self._report_outbox(moment)
        if self._pull_due(session, moment):
            self._pull(moment)
            session.pulled_at = moment
        self._fetch_blobs(int(moment))

    def _pull_due(self, session: _Session, moment: float) -> bool:
        if self._next_pull is not None:
            return moment >= self._next_pull
        return (
            session.pulled_at is None
            or moment >= session.pulled_at + self.settings.pull_interval_seconds
        )

    def _heartbeat_due(self, session: _Session, moment: float) -> bool:
        if session.heartbeat_at is None or self.store.refusals(limit=1):
            return True
        return (
            self.settings.ground_link_always
            and moment >= session.heartbeat_at + self.settings.heartbeat_interval_seconds
        )

    def _heartbeat(self, moment: float) -> None:
        refusals = self.store.refusals(limit=REFUSALS_SENT_MAX)
        running = [row.request_id for row in self.store.tickets("running", limit=RUNNING_SENT_MAX)]
        free = shutil.disk_usage(self.runs_dir).free
        response = self.link.heartbeat(
            agent_pb2.HeartbeatRequest(
                at=_timestamp(moment),
                refusals=[_refusal_message(row) for row in refusals],
                running=running,
                free_bytes=free,
            )
        )
        if refusals:
            self.store.acknowledge_refusals(refusals[-1].id)
            self.log(f"heartbeat: {len(refusals)} refusal(s) reported")
        self._remember_contacts(response.contacts)

    def _remember_contacts(self, contacts: object) -> None:
        rows = [
            ContactRow(c.id, c.station, c.start.seconds, c.end.seconds)
            for c in contacts  # type: ignore[attr-defined]
        ]
        # Every answer carries the plan; most carry the one stored already: no write then.
        if rows and rows != self._contacts_stored:
            self.store.replace_contacts(rows)
            self._contacts_stored = rows

    # --- tickets --------------------------------------------------------------------------

    def _pull(self, moment: float) -> None:
        now = int(moment)
        response = self.link.pull_tickets(
            agent_pb2.PullTicketsRequest(max_tickets=TICKETS_PULLED_MAX)
        )
        self._next_pull = None
        if response.HasField("next_pull_at"):
            promised = response.next_pull_at.ToNanoseconds() / NANOS_PER_SECOND
            self._next_pull = min(max(promised, moment), moment + NEXT_PULL_AHEAD_MAX)
        self._remember_contacts(response.contacts)
        for signed in response.tickets[:TICKETS_PULLED_MAX]:
            self._accept(bytes(signed.envelope), signed.request_id, now)

    def _accept(self, envelope: bytes, named: str, now: int) -> None:
        digest = ticket_digest(envelope)
        request_id = peek_request_id(envelope) or named
        existing = self.store.ticket(request_id)
        if existing is not None and existing.digest == digest and existing.state != "refused":
            return  # a re-pull of a ticket already taken
        if self.store.is_refused(digest):
            return  # a re-pull of a ticket refused and not yet reported
        try:
            ticket = self.settings.verifier.open(
                envelope,
                node=self.settings.node,
                now=now,
                skew_seconds=self.settings.skew_seconds,
                already_run=self._already_run,
            )
            if existing is not None and existing.state == "accepted":
                older = self.settings.verifier.verified(existing.envelope)
                if older.issued_at >= ticket.issued_at:
                    raise TicketRefused(
                        RefusalReason.REPLAY,
                        f"a ticket issued at {older.issued_at} for request {request_id} is"
                        " already held; this one is older",
                        request_id,
                    )
        except TicketRefused as refused:
            self._refuse(refused.request_id or request_id, digest, refused, now, accepted=False)
            return
        self.store.put_ticket(
            TicketRow(
                ticket.request_id, envelope, digest, "accepted", ticket.start, ticket.expires
            ),
            now,
        )
        self.log(
            f"ticket {ticket.request_id} accepted: start {_iso(ticket.start)},"
            f" fuel {ticket.fuel_max}"
        )

    def _already_run(self, request_id: str) -> bool:
        row = self.store.ticket(request_id)
        return row is not None and row.state in ("running", "ran", "done")

    def _refuse(
        self,
        request_id: str,
        digest: bytes,
        refused: TicketRefused,
        now: int,
        *,
        accepted: bool,
    ) -> None:
        self.store.refuse(
            RefusalRow(0, request_id, digest, int(refused.reason), refused.detail, now),
            accepted=accepted,
        )
        self.log(f"ticket {request_id or '?'} refused ({refused.reason.label}): {refused.detail}")

    def _ticket(self, row: TicketRow) -> Ticket:
        """The claims of a stored ticket (verified when it was accepted; kept by digest)."""
        ticket = self._tickets.get(row.digest)
        if ticket is None:
            ticket = self.settings.verifier.verified(row.envelope)
            self._tickets[row.digest] = ticket
            while len(self._tickets) > TICKETS_CACHED_MAX:
                self._tickets.popitem(last=False)
        return ticket

    # --- blobs ----------------------------------------------------------------------------

    def _fetch_blobs(self, now: int) -> None:
        budget = FETCH_BYTES_PER_STEP_MAX
        for row in self.store.tickets("accepted"):
            ticket = self._ticket(row)
            for sha256 in _blobs_of(ticket):
                if budget <= 0:
                    return
                if self.blobs.has(sha256):
                    continue
                try:
                    budget -= self.blobs.fetch(self.link, sha256, budget)
                except (BlobRefusedError, BrokerCallError) as error:
                    detail = getattr(error, "details", None) or str(error)
                    refused = TicketRefused(RefusalReason.BLOB_UNAVAILABLE, detail, row.request_id)
                    self._refuse(row.request_id, row.digest, refused, now, accepted=True)
                    break
                if self.blobs.has(sha256):
                    self.log(f"blob sha256:{sha256.hex()[:16]}… fetched for {row.request_id}")

    # --- runs -----------------------------------------------------------------------------

    def _recover(self, now: int) -> None:
        for row in self.store.tickets("running"):
            ticket = self._ticket(row)
            if now < ticket.expires:
                self.store.set_state(row.request_id, "accepted")
                self.log(f"run {row.request_id} was cut short by a stop: running it again")
            else:
                self._seal(row, ticket, aborted(now), issued_at=now)
                self.log(f"run {row.request_id} was cut short and its ticket expired: ABORTED")

    def _run_due(self, moment: float) -> None:
        for row in self.store.tickets("accepted"):
            if row.start > moment:
                return
            ticket = self._ticket(row)
            now = int(moment)
            if now >= ticket.end:
                self._seal(row, ticket, aborted(now), issued_at=now)
                self.log(f"ticket {row.request_id} reached after its end: ABORTED")
                continue
            if not all(self.blobs.has(sha256) for sha256 in _blobs_of(ticket)):
                refused = TicketRefused(
                    RefusalReason.BLOB_UNAVAILABLE,
                    "the workload or input had not arrived by the start",
                    row.request_id,
                )
                self._refuse(row.request_id, row.digest, refused, now, accepted=True)
                continue
            self._run(row, ticket)

    def _run(self, row: TicketRow, ticket: Ticket) -> None:
        started = max(int(self.clock.now().timestamp()), ticket.start)
        attempt = self.store.start_run(row.request_id, started)
        run_dir = self.runs_dir / row.request_id / str(attempt)
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log(f"run {row.request_id} started (attempt {attempt})")
        job = job_for(
            ticket,
            self.blobs.path(ticket.workload_sha256),
            None if ticket.input_sha256 is None else self.blobs.path(ticket.input_sha256),
            run_dir,
        )
        try:
            concluded = conclude(self.runner, job, self.runs_dir / row.request_id / "result")
        except SandboxError as error:
            now = int(self.clock.now().timestamp())
            self._end(row, aborted(now), None, str(error))
            self.log(f"run {row.request_id} ABORTED: {error}")
            return
        ended = max(int(self.clock.now().timestamp()), started)
        usage = Usage(
            concluded.outcome,
            concluded.exit_code,
            concluded.fuel,
            started,
            ended,
            concluded.result_sha256,
            concluded.result_bytes,
            0,
            ended,
        )
        downlink = None
        if concluded.outcome == RunOutcome.OK and concluded.result_sha256 is not None:
            downlink = DownlinkRow(
                row.request_id, concluded.result_bytes, concluded.result_sha256, 0, None
            )
        self._end(row, usage, downlink, concluded.detail)
        detail = f" ({concluded.detail})" if concluded.detail else ""
        self.log(
            f"run {row.request_id} ended: {concluded.outcome.label}, fuel {concluded.fuel},"
            f" result {concluded.result_bytes} bytes{detail}"
        )

    def _end(
        self,
        row: TicketRow,
        usage: Usage,
        downlink: DownlinkRow | None,
        detail: str,
    ) -> None:
        self.store.end_run(
            RunRow(
                row.request_id,
                0,
                usage.start,
                usage.end,
                int(usage.outcome),
                usage.exit_code,
                usage.fuel,
                usage.result_sha256,
                usage.result_bytes,
                detail,
            ),
            downlink,
        )

    def _finish_ran(self, moment: float) -> None:
        """Sign the receipt of every run whose result needs no downlink or is fully down."""
        for row in self.store.tickets("ran"):
            downlink = self.store.downlink(row.request_id)
            if downlink is not None and downlink.completed_at is None:
                continue
            run = self.store.run(row.request_id)
            assert run is not None
            assert run.ended_at is not None
            assert run.outcome is not None
            sent, held_until = 0, run.ended_at
            if downlink is not None and downlink.completed_at is not None:
                sent, held_until = downlink.size, downlink.completed_at
            usage = Usage(
                RunOutcome(run.outcome),
                run.exit_code or 0,
                run.fuel or 0,
                run.started_at,
                run.ended_at,
                run.result_sha256,
                run.result_bytes or 0,
                sent,
                held_until,
            )
            self._seal(row, self._ticket(row), usage, issued_at=int(moment))

    def _seal(self, row: TicketRow, ticket: Ticket, usage: Usage, *, issued_at: int) -> None:
        """Sign the receipt and put it in the outbox (the ticket is then done)."""
        receipt = receipt_of(
            ticket,
            row.digest,
            usage,
            issued_at=issued_at,
            fuel_per_core_second=self.settings.fuel_per_core_second,
            runtime=self.settings.runtime,
        )
        envelope = sign_receipt(receipt, self.settings.key, self._kid)
        self.store.put_receipt(row.request_id, envelope, issued_at)
        self.log(f"receipt {row.request_id} signed: {receipt.outcome.label}, fuel {receipt.fuel}")

    # --- downlink and receipts ------------------------------------------------------------

    def _downlink(self, moment: float) -> None:
        session = self._session
        assert session is not None
        sending = False
        for row in self.store.tickets("ran"):
            downlink = self.store.downlink(row.request_id)
            if downlink is None or downlink.completed_at is not None:
                continue
            ticket = self._ticket(row)
            if not _in_downlink_window(ticket, moment):
                continue
            sending = True
            if not self._send(session, ticket, downlink, moment):
                return  # out of tokens for now
        if not sending and self._pacer is not None:
            self._pacer.idle()

    def _send(
        self, session: _Session, ticket: Ticket, downlink: DownlinkRow, moment: float
    ) -> bool:
        """Send what the pacer allows of one result; True when it is fully down."""
        request_id = ticket.request_id
        pacer = self._pacer_for(ticket)
        offset = downlink.next_offset
        if request_id not in session.opened:
            opened = self.link.open_result(
                agent_pb2.OpenResultRequest(
                    request_id=request_id, size=downlink.size, sha256=downlink.sha256
                )
            )
            offset = opened.next_offset
            session.opened.add(request_id)
        result = self.runs_dir / request_id / "result"
        complete = offset >= downlink.size
        with result.open("rb") as file:
            while not complete:
                granted = pacer.grant(moment, min(RESULT_CHUNK_BYTES, downlink.size - offset))
                if granted == 0:
                    self.store.advance_downlink(request_id, offset, None)
                    return False
                file.seek(offset)
                data = file.read(granted)
                response = self.link.put_result_chunk(
                    agent_pb2.PutResultChunkRequest(request_id=request_id, offset=offset, data=data)
                )
                offset = response.next_offset
                complete = response.complete
        self.store.advance_downlink(request_id, downlink.size, int(moment))
        self.log(f"result {request_id} downlinked: {downlink.size} bytes")
        return True

    def _pacer_for(self, ticket: Ticket) -> Pacer:
        rate = max(ticket.downlink_mbps, 1)
        if self._pacer is None or self._pacer.downlink_mbps != rate:
            self._pacer = Pacer(
                rate,
                chunk_bytes=RESULT_CHUNK_BYTES,
                burst_seconds=self.settings.downlink_burst_seconds,
            )
        return self._pacer

    def _report_outbox(self, _moment: float) -> None:
        for request_id, envelope in self.store.outbox():
            try:
                response = self.link.report_receipt(
                    agent_pb2.ReportReceiptRequest(receipt=envelope)
                )
            except LinkDownError:
                raise
            except BrokerCallError as error:
                refusals = self.store.refuse_receipt(request_id, error.details)
                self.log(
                    f"receipt {request_id} refused by the broker ({error.code.name}):"
                    f" {error.details}"
                )
                if refusals >= RECEIPT_REFUSALS_MAX:
                    self.store.acknowledge_receipt(request_id)
                    self.log(f"receipt {request_id} dropped after {refusals} refusals")
                continue
            self.store.acknowledge_receipt(request_id)
            self.log(
                f"receipt {request_id} acknowledged: entry {response.entry_index},"
                f" digest {bytes(response.receipt_digest).hex()[:16]}…"
            )

    # --- housekeeping ---------------------------------------------------------------------

    def _prune(self, now: int) -> None:
        if self._pruned_at is not None and now < self._pruned_at + PRUNE_INTERVAL_SECONDS:
            return
        self._pruned_at = now
        for request_id in self.store.prune(now):
            shutil.rmtree(self.runs_dir / request_id, ignore_errors=True)
        live: set[bytes] = set()
        for state in ("accepted", "running"):
            for row in self.store.tickets(state):
                live.update(_blobs_of(self._ticket(row)))
        self.blobs.forget_all_but(live)

    def _next_due(self, moment: float) -> float:
        due = [moment + IDLE_SECONDS]
        accepted = self.store.tickets("accepted", limit=1)
        if accepted:
            due.append(float(accepted[0].start))
        due.extend(self._link_due(moment))
        due.extend(self._downlink_due(moment))
        return max(min(due), moment)

    def _link_due(self, moment: float) -> list[float]:
        session = self._session
        if self.settings.ground_link_always or session is not None:
            if session is None:
                return [self._probe_at]
            if self._next_pull is not None:
                due = [self._next_pull]
            else:
                pulled = session.pulled_at if session.pulled_at is not None else moment
                due = [pulled + self.settings.pull_interval_seconds]
            if self.settings.ground_link_always and session.heartbeat_at is not None:
                due.append(session.heartbeat_at + self.settings.heartbeat_interval_seconds)
            elif self._next_pull is not None and session.contact != "probe":
                due.extend(self._contact_changes(session, moment))
            return due
        contacts = self.store.contacts(ending_after=int(moment))
        if contacts:
            return [float(contacts[0].start)]
        return [self._probe_at]

    def _contact_changes(self, session: _Session, moment: float) -> list[float]:
        """When a step must come though no pull is due: the current contact's end, where the
        next contact's session (and heartbeat) begins, or the link goes down until the next
        contact's start (pulling every few seconds used to bring those steps). A contact
        beginning inside the current one waits for that end: its heartbeat then still
        comes after its start, as node health counts."""
        for contact in self.store.contacts(ending_after=int(moment)):
            if contact.id == session.contact:
                return [float(contact.end)]
        return []

    def _downlink_due(self, moment: float) -> list[float]:
        due: list[float] = []
        for row in self.store.tickets("ran"):
            downlink = self.store.downlink(row.request_id)
            if downlink is None or downlink.completed_at is not None:
                continue
            ticket = self._ticket(row)
            if _in_downlink_window(ticket, moment) and self._pacer is not None:
                remaining = downlink.size - downlink.next_offset
                due.append(self._pacer.ready_at(moment, min(RESULT_CHUNK_BYTES, remaining)))
            else:
                due.extend(float(w.start) for w in ticket.downlink if w.start > moment)
        return due


def _blobs_of(ticket: Ticket) -> list[bytes]:
    blobs = [ticket.workload_sha256]
    if ticket.input_sha256 is not None:
        blobs.append(ticket.input_sha256)
    return blobs


def _in_downlink_window(ticket: Ticket, moment: float) -> bool:
    """Inside a window of the ticket's downlink plan, or past the plan (what is still not down
    then goes down at whatever contact comes, best effort, until it is acknowledged)."""
    if not ticket.downlink or moment > max(w.end for w in ticket.downlink):
        return True
    return any(w.start <= moment <= w.end for w in ticket.downlink)


def _refusal_message(row: RefusalRow) -> agent_pb2.TicketRefusal:
    return agent_pb2.TicketRefusal(
        request_id=row.request_id,
        ticket_digest=row.ticket_digest,
        reason=row.reason,  # type: ignore[arg-type]
        detail=row.detail,
        at=_timestamp(row.at),
    )


def _timestamp(moment: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(moment * NANOS_PER_SECOND))
    return stamp


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
