"""Group commit: one writer thread applies queued work in shared, durable transactions.

Owns: the bounded queue between callers (gRPC handler threads, jobs) and the store, the loop
that drains it into groups of at most `GROUP_WEIGHT_MAX` transfers, and handing each caller its
own result once the group's transaction is committed (fsync'd): acknowledged means durable.
Concurrent single transfers therefore share one commit, as TigerBeetle batches its requests.

A group that fails as a whole (an unexpected database error) is retried item by item, so one
bad item cannot fail its neighbours; an item that fails alone gets the exception.

A broken invariant (`InvariantViolationError` from the write path's A13 assertion) is not such
an error: it is a programmer error, and retrying would only commit part of what broke it. The
writer halts for good, loudly: it logs the reason at CRITICAL, fails the group and everything
queued with `WriterHaltedError` (UNAVAILABLE, with the reason), refuses every later submit the
same way, and calls `on_halt(reason)` (the broker turns its health to NOT_SERVING). Nothing of
the group was committed: the assertion runs inside its transaction.

Does not own: what the work does (orbitq.ledger.store.write, which also releases reservations
past their timeout before any group that comes after it, as TigerBeetle does before each batch).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from orbitq.ledger.errors import InvariantViolationError
from orbitq.ledger.store.facade import LedgerStore
from orbitq.ledger.store.work import AttachedWriteError, WorkItem, WorkResult, work_weight

log = logging.getLogger(__name__)

# Bound on items waiting for the writer; beyond it callers are told to back off.
QUEUE_ITEMS_MAX = 4096
# Bound on the transfers one group commit applies (several client batches of up to 8,190).
GROUP_WEIGHT_MAX = 16_384


class WriterOverloadedError(Exception):
    """The writer's queue is full: the caller should retry later (RESOURCE_EXHAUSTED)."""


class WriterStoppedError(Exception):
    """The writer is not running (shutting down, or never started)."""


class WriterHaltedError(WriterStoppedError):
    """The writer halted for good on a broken ledger invariant (a programmer error): it takes
    no more work until an operator has looked. `reason` says what broke."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the ledger writer halted on a broken invariant and accepts no work: {reason}"
        )
        self.reason = reason

    def __reduce__(self) -> tuple[type[WriterHaltedError], tuple[str]]:
        return (type(self), (self.reason,))


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """What one group commit did, for listeners (e.g. the checkpoint signer)."""

    items: int
    queue_empty: bool


@dataclass(slots=True)
class _Job:
    item: WorkItem
    future: Future[WorkResult]


_STOP = object()


class GroupCommitWriter:
    """The single writer of a LedgerStore."""

    def __init__(
        self,
        store: LedgerStore,
        now_ns: Callable[[], int],
        *,
        on_commit: Callable[[CommitInfo], None] | None = None,
        on_halt: Callable[[str], None] | None = None,
        queue_items_max: int = QUEUE_ITEMS_MAX,
        group_weight_max: int = GROUP_WEIGHT_MAX,
    ) -> None:
        self._store = store
        self._now_ns = now_ns
        self._on_commit = on_commit
        self._on_halt = on_halt
        self._queue: queue.Queue[_Job | object] = queue.Queue(maxsize=queue_items_max)
        self._group_weight_max = group_weight_max
        self._thread: threading.Thread | None = None
        self._running = False
        # Why the writer halted (a broken invariant); None while it has not.
        self._halt_reason: str | None = None
        # Guards running/halted and the queue's puts: a job is either queued before the writer
        # stops or halts (and then resolved by it), or refused.
        self._lock = threading.Lock()

    @property
    def queue_depth(self) -> int:
        """Work items waiting for the writer (approximate: the queue moves meanwhile)."""
        return self._queue.qsize()

    @property
    def halt_reason(self) -> str | None:
        """What broke, once the writer halted on a broken invariant; None before."""
        return self._halt_reason

    def start(self) -> None:
        with self._lock:
            if self._halt_reason is not None:
                raise WriterHaltedError(self._halt_reason)
            if self._running:
                return
            self._running = True
            self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the work already queued, then stop."""
        with self._lock:
            if not self._running:
                return
            self._running = False
            thread = self._thread
        self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)

    def submit(self, item: WorkItem) -> Future[WorkResult]:
        """Queue `item`; the future resolves once it is durable (or failed)."""
        future: Future[WorkResult] = Future()
        with self._lock:
            if self._halt_reason is not None:
                raise WriterHaltedError(self._halt_reason)
            if not self._running:
                raise WriterStoppedError("the ledger writer is not running")
            try:
                self._queue.put_nowait(_Job(item, future))
            except queue.Full:
                raise WriterOverloadedError(
                    f"the ledger writer has {self._queue.maxsize} items queued; retry shortly"
                ) from None
        return future

    def apply(self, item: WorkItem, timeout: float = 30.0) -> WorkResult:
        """Queue `item` and wait for its durable result."""
        return self.submit(item).result(timeout)

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            assert isinstance(first, _Job)
            group = [first]
            weight = work_weight(first.item)
            while weight < self._group_weight_max:
                try:
                    extra = self._queue.get_nowait()
                except queue.Empty:
                    break
                if extra is _STOP:
                    stopping = True
                    break
                assert isinstance(extra, _Job)
                group.append(extra)
                weight += work_weight(extra.item)
            if not self._commit(group):
                return  # halted: everything queued has been failed
            if self._on_commit is not None:
                try:
                    self._on_commit(CommitInfo(len(group), self._queue.empty()))
                except Exception:
                    log.exception("commit listener failed")
        self._drain()

    def _commit(self, group: list[_Job]) -> bool:
        """Write `group` and resolve its futures; False when the writer halted instead."""
        items: list[WorkItem] = [job.item for job in group]
        try:
            results = self._store.write(items, self._now_ns())
        except InvariantViolationError as error:
            # Never retried item by item: see the module docstring.
            self._halt(group, error)
            return False
        except Exception as error:
            if len(group) == 1:
                if isinstance(error, AttachedWriteError):
                    log.info("an item's attached write failed: %s", error)
                else:
                    log.exception("ledger write failed")
                group[0].future.set_exception(error)
                return True
            log.warning("group of %d failed; retrying its items one by one", len(group))
            for index, job in enumerate(group):
                if not self._commit([job]):
                    self._fail(group[index + 1 :])
                    return False
            return True
        for job, result in zip(group, results, strict=True):
            job.future.set_result(result)
        return True

    def _halt(self, group: list[_Job], error: InvariantViolationError) -> None:
        reason = str(error)
        log.critical(
            "ledger writer halted: a ledger invariant broke, which is a programmer error;"
            " nothing of the failing group was committed and no more work is accepted: %s",
            reason,
            exc_info=error,
        )
        with self._lock:
            self._halt_reason = reason
            self._running = False
        self._fail(group)
        self._drain()
        if self._on_halt is not None:
            try:
                self._on_halt(reason)
            except Exception:
                log.exception("halt listener failed")

    def _fail(self, jobs: list[_Job]) -> None:
        """Fail `jobs` with the error of the halt."""
        assert self._halt_reason is not None
        for job in jobs:
            job.future.set_exception(WriterHaltedError(self._halt_reason))

    def _drain(self) -> None:
        """Fail what is still queued once the writer stopped or halted (bounded: nothing is
        queued any more, see `submit`)."""
        for _ in range(self._queue.maxsize + 1):
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if not isinstance(job, _Job):
                continue
            if self._halt_reason is not None:
                self._fail([job])
            else:
                job.future.set_exception(WriterStoppedError("the ledger writer stopped"))
