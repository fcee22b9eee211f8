"""The broker: every part of orbitq wired together, started and stopped as one.

Owns: assembling the database, migrations, ledger store and writer, identity, domain services
(the request service and, beside it, the scheduling loop that works on its requests; the blob
store; the node agents' side, with the ticket key) and background jobs (APScheduler calling
plain functions: expiry of reservations, checkpoint signing, refreshing the contact plan,
scheduling cycles, node health, result retention, budget periods) from a BrokerConfig; recovery of
reservations no request owns, at start; the settlement mode
(`receipts`: node agents start and complete work; `plan`: the clock does); creating a data
directory (`init`); orderly shutdown (stop taking calls, finish queued ledger work, stop jobs);
telling listeners (the server's health) when the ledger writer halts on a broken invariant.

Does not own: the gRPC server (orbitq.services.server) or any rule.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from orbitq.ledger.checkpoint import Checkpoint
from orbitq.ledger.note import Signer
from orbitq.ledger.store import ExpireDue, LedgerStore
from orbitq.ledger.store.writer import CommitInfo, GroupCommitWriter
from orbitq.services.agents import ticket_key
from orbitq.services.agents.service import Agents, AgentSettings
from orbitq.services.agents.ticket_key import TicketSigner
from orbitq.services.auth import SYSTEM, Authenticator
from orbitq.services.blobs.files import BlobFiles
from orbitq.services.blobs.service import Blobs
from orbitq.services.blobs.store import BlobStore, Limits
from orbitq.services.budgets import BudgetRunReport, Budgets
from orbitq.services.clock import Clock, ShiftedClock, SystemClock, to_ns
from orbitq.services.config import (
    KEY_FILE,
    TICKET_KEY_FILE,
    BrokerConfig,
    load_config,
    write_config,
)
from orbitq.services.constellation import Constellation, RefreshReport, check_horizon
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate
from orbitq.services.explaining import Explainer
from orbitq.services.identity.api_keys import Role
from orbitq.services.identity.signing_key import create_key_file, load_key_file
from orbitq.services.quota import Quota
from orbitq.services.requests import GRACE_SECONDS, Requests
from orbitq.services.requests.recovery import RecoveryReport, recover
from orbitq.services.requests.store import new_request_id
from orbitq.services.requests.terms import CancelTerms
from orbitq.services.scheduler import SchedulerConfig
from orbitq.services.scheduling import (
    AdvanceReport,
    ClockCompletion,
    ClockStart,
    CycleReport,
    LeaderLock,
    ReceiptDeadline,
    SchedulingLoop,
    TicketStart,
    displace_guard_seconds,
)
from orbitq.services.tenants import IssuedKey, Tenants
from orbitq.services.usage import UsageReports

log = logging.getLogger(__name__)

# Minimum time between checkpoints signed because a burst of commits ended.
CHECKPOINT_BURST_SPACING_SECONDS = 0.5
# How often results past their retention are deleted.
RETENTION_INTERVAL_SECONDS = 3_600.0
# How often budgets' periods are opened and closed (real seconds; a period is at least a day,
# so at most this late, also on a shifted clock running up to 1,440 times real speed).
BUDGET_INTERVAL_SECONDS = 60.0

_SHIFTED = re.compile(r"^shifted:(?P<start>[^x@]+)(?:x(?P<rate>[0-9.]+))?(?:@(?P<anchor>.+))?$")


def _instant(text: str, spec: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"clock {spec!r}: {text!r} is not an RFC 3339 instant") from None
    if value.tzinfo is None:
        raise ValueError(f"clock {spec!r}: {text!r} needs a time zone (e.g. Z)")
    return value


def clock_from_spec(spec: str) -> Clock:
    """`system`, or `shifted:<RFC 3339 start>[x<rate>][@<RFC 3339 anchor>]`: the clock shows
    `start` at the real instant `anchor` (default: now) and runs `rate` times real speed."""
    if spec == "system":
        return SystemClock()
    match = _SHIFTED.match(spec)
    if match is None:
        raise ValueError(f"clock {spec!r}: use 'system' or 'shifted:2025-12-06T00:00:00Z[x60]'")
    anchor = _instant(match["anchor"], spec) if match["anchor"] else None
    return ShiftedClock(_instant(match["start"], spec), float(match["rate"] or 1.0), anchor)


def anchored(spec: str) -> str:
    """`spec` with its anchor fixed to now, so a data directory's processes share one clock
    (a ledger's timestamps never go back: a later `serve` must not restart the clock)."""
    if spec.startswith("shifted:") and "@" not in spec:
        clock_from_spec(spec)  # validate
        return f"{spec}@{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
    return spec


@dataclass(frozen=True)
class InitResult:
    data_dir: Path
    operator_key: IssuedKey
    verifier_key: str


class Broker:
    """All the parts of one broker process; `start()` before serving, `stop()` after."""

    def __init__(
        self,
        config: BrokerConfig,
        clock: Clock | None = None,
        *,
        request_ids: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or clock_from_spec(config.clock)
        if config.receipt_grace_seconds >= GRACE_SECONDS:
            raise ValueError(
                f"receipt_grace_seconds ({config.receipt_grace_seconds:,}) must be below the"
                f" reservations' grace of {GRACE_SECONDS:,} s: the refund of a missing receipt"
                " comes before the reservation's own timeout"
            )
        self.engine = create_engine(config.db_url, durable=config.durable)
        migrate(self.engine)
        key = load_key_file(config.key_path, config.key_passphrase)
        self.signer = Signer.from_private_key(config.origin, key)
        self.ticket_signer = TicketSigner(
            config.origin, ticket_key.load_or_create(config.ticket_key_path, config.key_passphrase)
        )
        self.store = LedgerStore(self.engine)
        self.store.initialize(self.now_ns())
        self._halt_listeners: list[Callable[[str], None]] = []
        self._commit_listeners: list[Callable[[CommitInfo], None]] = []
        self.writer = GroupCommitWriter(
            self.store, self.now_ns, on_commit=self._after_commit, on_halt=self._writer_halted
        )
        self.authenticator = Authenticator(self.engine, self.now_ns)
        self.tenants = Tenants(self.engine, self.writer, self.authenticator, self.now_ns)
        self.quota = Quota(self.store, self.writer, self.tenants)
        self.budgets = Budgets(
            self.engine, self.store, self.writer, self.quota, self.tenants, self.clock.now
        )
        self.usage = UsageReports(self.engine, self.tenants)
        check_horizon(config.contact_horizon_hours, config.contact_retention_days)
        self.constellation = Constellation(self.engine, self.clock.now, self._world_changed)
        self.blob_store = BlobStore(
            self.engine,
            BlobFiles(config.blobs_path),
            Limits(config.blob_store_bytes_max, config.blob_tenant_bytes_max),
            self.now_ns,
        )
        self.blobs = Blobs(self.blob_store, self.tenants)
        receipts = config.receipts
        self.requests = Requests(
            self.engine,
            self.clock.now,
            self.tenants,
            self.quota,
            self.writer,
            self.constellation,
            on_submitted=self._schedule_soon,
            request_ids=request_ids or new_request_id,
            receipt_grace=config.receipt_grace_seconds if receipts else None,
            blobs=self.blob_store,
            terms=CancelTerms(config.cancel_cutoff_seconds, config.cancel_fee_percent),
        )
        self.explainer = Explainer(
            self.requests,
            self.constellation,
            self.quota,
            self.clock.now,
            agents_required=receipts,
        )
        self.agents = Agents(
            self.engine,
            AgentSettings(
                tolerance_seconds=config.contact_tolerance_seconds,
                receipt_grace_seconds=config.receipt_grace_seconds,
                missed_contacts_degraded=config.missed_contacts_degraded,
                missed_contacts_down=config.missed_contacts_down,
                result_retention_days=config.result_retention_days,
                pull_lead_seconds=config.ticket_pull_lead_seconds,
                pull_notice_seconds=config.ticket_pull_notice_seconds,
            ),
            self.constellation,
            self.requests,
            self.blob_store,
            self.writer,
            self.authenticator,
            self.ticket_signer,
            self.now_ns,
        )
        self.scheduling = SchedulingLoop(
            self.requests.store,
            self.requests.reservations,
            self.constellation,
            self.requests.hub,
            LeaderLock(self.engine),
            self.clock.now,
            config=SchedulerConfig(
                agents_required=receipts,
                uplink_notice_seconds=config.ticket_pull_notice_seconds,
                displace_guard_seconds=displace_guard_seconds(
                    config.ticket_pull_lead_seconds, config.contact_tolerance_seconds
                ),
            ),
            start=TicketStart(self.agents.tickets) if receipts else ClockStart(),
            completion=(
                ReceiptDeadline(config.receipt_grace_seconds) if receipts else ClockCompletion()
            ),
        )
        self.jobs = BackgroundScheduler(timezone="UTC")
        self._started = False
        self._burst_lock = threading.Lock()
        self._burst_scheduled = False
        self._last_burst = 0.0
        self._cycle_lock = threading.Lock()
        self._cycle_requested = False

    def now_ns(self) -> int:
        return to_ns(self.clock.now())

    # -- background work (plain functions, so tests call them with a simulated clock) ----------

    def expire_due(self) -> None:
        """Release reservations whose timeout has passed."""
        self.writer.apply(ExpireDue())

    def run_budgets(self) -> BudgetRunReport:
        """Close budget periods that ended and open the current ones (idempotent)."""
        return self.budgets.run(self.clock.now())

    def sign_checkpoint(self) -> Checkpoint:
        """Sign a checkpoint of everything committed so far (no-op if nothing new)."""
        return self.store.sign_checkpoint(self.signer, self.config.origin, self.now_ns())

    def refresh_contacts(self) -> RefreshReport:
        """Recompute the contact plan over the configured horizon from the clock's now."""
        return self.constellation.refresh_contacts(
            self.clock.now(), self.config.contact_horizon_hours, self.config.contact_retention_days
        )

    def check_nodes(self) -> None:
        """Degrade or take down enrolled nodes that missed contacts (settlement "receipts")."""
        self.agents.check_nodes()

    def expire_results(self) -> int:
        """Delete results kept longer than the retention after their request ended."""
        return self.agents.expire_results()

    def schedule(self) -> tuple[AdvanceReport, CycleReport]:
        """Time-driven request transitions, then one scheduling cycle, at the clock's now."""
        with self._cycle_lock:
            self._cycle_requested = False
        return self.scheduling.tick()

    def _schedule_soon(self) -> None:
        # A request was submitted: run a cycle soon, off the RPC thread. A burst of submissions
        # collapses into one queued cycle (the flag), which sees all of them.
        if not self._started:
            return
        with self._cycle_lock:
            if self._cycle_requested:
                return
            self._cycle_requested = True
        self.jobs.add_job(
            self.schedule,
            id="schedule-now",
            replace_existing=True,
            misfire_grace_time=None,
            max_instances=2,
        )

    def _world_changed(self) -> None:
        self.requests.world_changed()
        # Nodes or stations changed: refresh soon rather than at the next interval. Requests
        # arriving before it starts collapse into it (same job id); one that arrives while a
        # refresh runs queues behind it (max 2 instances: the second waits for the first's lock
        # and then reads the newest world).
        if self._started:
            self.jobs.add_job(
                self.refresh_contacts,
                id="contacts-now",
                replace_existing=True,
                misfire_grace_time=None,
                max_instances=2,
            )

    def _after_commit(self, info: CommitInfo) -> None:
        for listener in self._commit_listeners:
            listener(info)
        # After a burst of group commits (the queue drained), sign promptly instead of waiting
        # for the interval — but at most one pending request, and not more often than
        # CHECKPOINT_BURST_SPACING_SECONDS, so a steady trickle of commits does not turn into a
        # checkpoint (and an extra fsync) per commit.
        if not (info.queue_empty and self._started):
            return
        with self._burst_lock:
            if self._burst_scheduled:
                return
            self._burst_scheduled = True
        self.jobs.add_job(self._burst_checkpoint, id="checkpoint-burst", replace_existing=True)

    def _burst_checkpoint(self) -> None:
        try:
            if time.monotonic() - self._last_burst >= CHECKPOINT_BURST_SPACING_SECONDS:
                self._last_burst = time.monotonic()
                self.sign_checkpoint()
        finally:
            with self._burst_lock:
                self._burst_scheduled = False

    def on_commit(self, listener: Callable[[CommitInfo], None]) -> None:
        """Call `listener(info)` on the writer's thread after each group commit (metrics)."""
        self._commit_listeners.append(listener)

    def on_halt(self, listener: Callable[[str], None]) -> None:
        """Call `listener(reason)` when the ledger writer halts on a broken invariant (at once
        if it already has). The server turns its health to NOT_SERVING."""
        self._halt_listeners.append(listener)
        reason = self.writer.halt_reason
        if reason is not None:
            listener(reason)

    def _writer_halted(self, reason: str) -> None:
        # A programmer error (the writer logged it): the broker keeps running so its reads stay
        # available, but takes no more ledger work and says so (WriterHaltedError: UNAVAILABLE).
        for listener in list(self._halt_listeners):
            try:
                listener(reason)
            except Exception:
                log.exception("halt listener failed")

    # -- lifecycle -----------------------------------------------------------------------------

    def recover(self) -> RecoveryReport:
        """Release reservations no request owns (orbitq.services.requests.recovery): run by
        `start`, before serving."""
        return recover(self.engine, self.requests.store, self.requests.reservations)

    def start(self) -> None:
        self.writer.start()
        try:
            self.recover()
        except Exception:
            # Serving is still right: what recovery would release, the ledger's timeouts do.
            log.exception("recovery at start failed; orphaned reservations wait for their timeout")
        self.sign_checkpoint()
        interval_jobs: list[tuple[str, Callable[[], object], float]] = [
            ("expire", self.expire_due, self.config.expire_interval_seconds),
            ("checkpoint", self.sign_checkpoint, self.config.checkpoint_interval_seconds),
            ("contacts", self.refresh_contacts, self.config.contact_refresh_seconds),
            ("schedule", self.schedule, self.config.schedule_interval_seconds),
            ("results", self.expire_results, RETENTION_INTERVAL_SECONDS),
            ("budgets", self.run_budgets, BUDGET_INTERVAL_SECONDS),
        ]
        if self.config.receipts:
            interval_jobs.append(
                ("node-health", self.check_nodes, self.config.node_health_interval_seconds)
            )
        for job_id, function, seconds in interval_jobs:
            self.jobs.add_job(
                function,
                "interval",
                seconds=seconds,
                id=job_id,
                max_instances=1,
                coalesce=True,
            )
        self.jobs.start()
        self._started = True
        # A broker that was down has a stale plan: refresh once right away; and it may owe
        # transitions (work that started or ended meanwhile) and reservations: schedule now.
        self._world_changed()
        self._schedule_soon()
        # Periods that ended while the broker was down close now (bounded: budgets.service).
        self.jobs.add_job(self.run_budgets, id="budgets-now", misfire_grace_time=None)

    def stop(self) -> None:
        self._started = False
        self.requests.end_watches()
        if self.jobs.running:
            self.jobs.shutdown(wait=True)
        self.scheduling.close()
        self.requests.close()
        self.writer.stop()
        try:
            self.sign_checkpoint()
        except Exception:
            log.exception("final checkpoint failed")
        self.engine.dispose()


def init_data_dir(
    data_dir: Path,
    *,
    origin: str,
    db_url: str | None = None,
    passphrase: bytes | None = None,
    clock: Clock | None = None,
    clock_spec: str = "system",
) -> InitResult:
    """Create a broker's data directory: config, signing key and ticket key (0600), database,
    operator key.

    `clock_spec` is written to config.toml (anchored: see `anchored`) and used by every later
    `serve`; `clock` overrides it for this call only (tests)."""
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    key_path = data_dir / KEY_FILE
    if key_path.exists():
        raise FileExistsError(f"{data_dir} is already initialised ({key_path} exists)")
    clock_spec = anchored(clock_spec)
    write_config(data_dir, origin, db_url, clock_spec)
    create_key_file(key_path, passphrase)
    create_key_file(data_dir / TICKET_KEY_FILE, passphrase)
    config = replace(load_config(data_dir, db_url=db_url), key_passphrase=passphrase)
    broker = Broker(config, clock)
    try:
        broker.writer.start()
        issued = broker.tenants.issue_key(SYSTEM, Role.OPERATOR, "", "", "created by orbitq init")
        broker.sign_checkpoint()
        verifier_key = broker.signer.verifier_key()
    finally:
        broker.writer.stop()
        broker.engine.dispose()
    return InitResult(data_dir, issued, verifier_key)
