"""The offline audit of a stored ledger: rules V1..V20 of docs/ledger-format.md, in order.

Owns: checking that a broker's stored ledger is exactly what its signed log says — every leaf
and stored subtree hash recomputed from the stored bytes, every entry's index and timestamp,
every checkpoint's signature, root and consistency with the next, every transfer row and
account row against its entry, and a replay of all transfers against the stored balances,
pending statuses and the ledger's invariants. And the evidence behind charges (V15-V18): every
usage receipt in the log verifies under its node's enrolled key, every settlement against a
receipt follows it and charges no more than it backs, and the evidence rows match the log.
And what holds the rest together (V19, V20): the stored checkpoints form one unbroken chain
(each names its sequence number, time and predecessor under its signature, L19), and every
column of the head row is what the log and that chain say.
It stops at the first failure and raises the `LedgerIntegrityError` subclass that names it:
`EntryIntegrityError(index, detail)`, `CheckpointIntegrityError(size, ...)`,
`AccountIntegrityError` / `BalanceMismatchError(account, ...)`, `HeadIntegrityError(column,
...)` or `InvariantViolationError`.
On success it returns an `AuditReport`.

Pure: it reads pages of raw rows through the `AuditSource` protocol (which
`LedgerStore.snapshot()` implements), so tests feed it lists and `orbitq ledger verify` feeds
it a database; `audit_store` is the thin function that joins the two, taking anything with a
`snapshot()` (the `SnapshotSource` protocol), so this module imports no database code.

Does not own: SQL (orbitq.ledger.store), where the verifier key comes from, or output.

Speed: 150k-185k entries/s by CPU time on a shared machine (bench/ledger_verify.py;
docs/ledger-format.md, "The offline audit", gives the per-entry budget and what bounds it;
docs/performance.md, "Verification", the forms measured and not kept). The per-entry loop is one
function with its state in local variables; it hashes with `hashlib` directly, keeps the
frontier (L6) inline, reads each entry with the generated protobuf class (a handful of field
reads; the flags sub-message is compared as a whole), unpacks the transfer row once and compares
its columns one by one, replays from the row's values once the row is known to equal its entry,
and builds error messages only on the slow path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from hashlib import sha256
from itertools import chain, pairwise
from typing import Any, Protocol

from google.protobuf.message import DecodeError

from orbitq.ledger import merkle
from orbitq.ledger.checkpoint import Checkpoint, verify_checkpoint
from orbitq.ledger.checkpoint_chain import body_hash, chain_link_of
from orbitq.ledger.entries import NodeKeyEvidence, evidence_of
from orbitq.ledger.errors import (
    AccountIntegrityError,
    BalanceMismatchError,
    CheckpointIntegrityError,
    EntryIntegrityError,
    HeadIntegrityError,
    InvariantViolationError,
    LedgerIntegrityError,
)
from orbitq.ledger.invariants import check_balances
from orbitq.ledger.model import (
    NANOS_PER_SECOND,
    TRANSIENT_RESULTS,
    Account,
    AccountFlag,
    Code,
    Kind,
    PendingStatus,
    Result,
    SystemAccount,
    TransferFlag,
)
from orbitq.ledger.note import Verifier
from orbitq.ledger.receipts import (
    Charge,
    ReceiptError,
    ReceiptVerifier,
    charge_of,
    core_seconds_problem,
)
from orbitq.v1 import ledger_pb2, quota_pb2

__all__ = [
    "AuditReport",
    "AuditSource",
    "Progress",
    "SnapshotSource",
    "audit_log",
    "audit_store",
]

HASH_SIZE = merkle.HASH_SIZE

# Columns of a transfer row, as the store reads them (orbitq.ledger.store.rows.TRANSFER_COLUMNS).
_ID, _DEBIT, _CREDIT, _AMOUNT, _PENDING_ID, _USER_DATA = 0, 1, 2, 3, 4, 5
_KIND, _CODE, _FLAGS, _TIMEOUT, _TIMESTAMP, _RESULT, _RELEASED, _ENTRY = range(6, 14)
_ROW_FIELDS = (
    "id",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "pending_id",
    "user_data",
    "kind",
    "code",
    "flags",
    "timeout_seconds",
    "timestamp_ns",
    "result",
    "released",
    "entry_index",
)

# Positions in a replayed account's list (see _Walk.balances).
_DP, _DPO, _CP, _CPO, _KIND_AT, _LIMITED_AT = range(6)

_OK = int(Result.OK)
_LINKED = int(TransferFlag.LINKED)
_PENDING = int(TransferFlag.PENDING)
_POST = int(TransferFlag.POST_PENDING)
_VOID = int(TransferFlag.VOID_PENDING)
_RESOLVES = _POST | _VOID
_EXPIRE = int(Code.EXPIRE)
_SETTLE = int(Code.SETTLE)
_DIGEST_BYTES = 32
_TRANSIENT = frozenset(int(result) for result in TRANSIENT_RESULTS)
_LIMITED = int(AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS)
_BALANCE_NAMES = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


def _flags_message(flags: int) -> quota_pb2.TransferFlags:
    return quota_pb2.TransferFlags(
        linked=bool(flags & TransferFlag.LINKED),
        pending=bool(flags & TransferFlag.PENDING),
        post_pending=bool(flags & TransferFlag.POST_PENDING),
        void_pending=bool(flags & TransferFlag.VOID_PENDING),
    )


# V9: a row's flags column against the entry's flags message, compared as one message (one
# field read instead of four); a flags value outside 0..15 matches no message.
_FLAGS_MESSAGES = {flags: _flags_message(flags) for flags in range(16)}


class Progress(Protocol):
    """Told `(entries verified, entries in the log)` after each page of entries."""

    def __call__(self, done: int, total: int, /) -> None: ...


class AuditSource(Protocol):
    """The stored ledger as the audit reads it (`LedgerStore.snapshot()` provides this)."""

    def head(self) -> tuple[Any, ...] | None:
        """The head row as stored: (size, last_timestamp_ns, next_account_id, checkpoints,
        checkpoint_hash); None if there is no head row."""
        ...

    def entry_pages(self) -> Iterable[Sequence[tuple[int, bytes, bytes]]]:
        """Pages of (index, entry bytes, stored hashes) rows in index order."""
        ...

    def transfer_pages(self) -> Iterable[Sequence[tuple[Any, ...]]]:
        """Pages of transfer rows (the 14 columns of store._TRANSFER_COLUMNS) in timestamp order."""
        ...

    def accounts(self) -> Sequence[Account]:
        """Every account row."""
        ...

    def checkpoints(self) -> Sequence[tuple[int, bytes, str, int]]:
        """(size, root hash, signed note, timestamp_ns) of every stored checkpoint, smallest
        first."""
        ...

    def pending(self) -> Iterable[tuple[bytes, int, int]]:
        """(transfer id, status, expires_ns) of every pending-status row."""
        ...

    def evidence_pages(self) -> Iterable[Sequence[tuple[Any, ...]]]:
        """Pages of evidence rows (entry_index, digest, kind, node, request_id) in entry order."""
        ...


@dataclass(frozen=True)
class AuditReport:
    """What a successful audit verified."""

    entries: int
    """Entries in the log; each leaf and stored hash recomputed (V1-V5)."""
    transfers: int
    """Transfer entries (successes and recorded failures) matched to their rows and replayed."""
    accounts: int
    """Accounts whose creation, row and balances were checked (V8, V11-V13)."""
    checkpoints: int
    """Stored checkpoints whose signature, root and consistency were checked (V6, V7)."""
    seconds: float
    """Wall-clock time of the audit."""
    tree_size: int
    """Size of the audited log (= `entries`)."""
    root_hash: bytes
    """Root recomputed over the whole log."""
    newest_checkpoint: Checkpoint | None
    """The newest stored checkpoint, its signature verified; None if none is stored."""
    node_keys: int = 0
    """NodeKeyEnrolled entries checked (V15, V18)."""
    receipts: int = 0
    """ReceiptRecorded entries whose receipt verified under its node's key (V15-V18)."""


class SnapshotSource(Protocol):
    """Where a consistent `AuditSource` comes from (`LedgerStore` is one)."""

    def snapshot(self) -> AbstractContextManager[AuditSource]:
        """One read-only view of the whole stored ledger as of one instant."""
        ...


def audit_store(
    store: SnapshotSource,
    verifier: Verifier,
    *,
    known_roots: Mapping[int, bytes] | None = None,
    progress: Progress | None = None,
) -> AuditReport:
    """The audit of `store`'s database, read in one consistent snapshot (see `audit_log`)."""
    with store.snapshot() as snapshot:
        return audit_log(snapshot, verifier, known_roots=known_roots, progress=progress)


def audit_log(
    source: AuditSource,
    verifier: Verifier,
    *,
    known_roots: Mapping[int, bytes] | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> AuditReport:
    """V1-V20: audit the stored ledger `source` against the broker's checkpoint key `verifier`.

    `known_roots` are tree heads the caller verified before ({size: root}, e.g. the last
    checkpoint a client trusted): the stored log must reproduce each of them (V6), which
    catches a history that was rewritten and re-signed with the same key.

    Returns an AuditReport; raises the LedgerIntegrityError subclass naming the first failure.
    """
    started = clock()
    head = _head_of(source.head())
    head_size = head[0]
    rows = source.checkpoints()
    checkpoints = _checked_checkpoints(rows, verifier)  # V6, all but the roots
    accounts = {account.id: account for account in source.accounts()}
    expected = _expected_roots(checkpoints, known_roots or {})
    walk = _Walk(head_size, accounts, expected, _consistency_leaves(checkpoints), progress)
    walk.evidence_rows = iter(chain.from_iterable(source.evidence_pages()))
    walk.run(source.entry_pages(), chain.from_iterable(source.transfer_pages()))
    _check_consistency(checkpoints, walk.subtrees)  # V7
    _check_account_rows(accounts, walk)  # V11
    _check_balances(accounts, walk.balances)  # V12
    _check_invariants(accounts)  # V13
    _check_pending(source.pending(), walk)  # V14
    _check_chain(checkpoints, [row[3] for row in rows])  # V19
    _check_head(head, checkpoints, walk)  # V20
    _check_known_stored(checkpoints, known_roots or {})  # V19
    return AuditReport(
        entries=walk.size,
        transfers=walk.transfers,
        accounts=len(accounts),
        checkpoints=len(checkpoints),
        seconds=clock() - started,
        tree_size=walk.size,
        root_hash=walk.root(),
        newest_checkpoint=checkpoints[-1] if checkpoints else None,
        node_keys=walk.node_key_entries,
        receipts=len(walk.receipts),
    )


# --- V6: checkpoints, before the walk -----------------------------------------------------------


def _checked_checkpoints(
    rows: Sequence[tuple[int, bytes, str, int]], verifier: Verifier
) -> list[Checkpoint]:
    """V6: every stored checkpoint is a note signed by the broker's key, for its own origin, and
    its size and root columns say what the note says. Roots are checked during the walk."""
    checked: list[Checkpoint] = []
    for size, root_hash, note, _ in rows:
        try:
            checkpoint = verify_checkpoint(note, verifier)
        except LedgerIntegrityError as error:
            raise CheckpointIntegrityError(
                size,
                f"the stored note does not verify with the broker's key "
                f"{verifier.verifier_key()}: {error}",
            ) from error
        if checkpoint.size != size:
            raise CheckpointIntegrityError(
                size, f"the stored row says size {size}, its signed note says {checkpoint.size}"
            )
        if checkpoint.root_hash != root_hash:
            raise CheckpointIntegrityError(
                size,
                f"the stored root column {root_hash.hex()} differs from the signed note's root "
                f"{checkpoint.root_hash.hex()}",
            )
        checked.append(checkpoint)
    return checked


@dataclass(frozen=True, slots=True)
class _ExpectedRoot:
    root_hash: bytes
    checkpoint: bool  # True: a stored checkpoint; False: a root the caller trusted before


def _expected_roots(
    checkpoints: Sequence[Checkpoint], known_roots: Mapping[int, bytes]
) -> dict[int, list[_ExpectedRoot]]:
    expected: dict[int, list[_ExpectedRoot]] = {}
    for checkpoint in checkpoints:
        expected.setdefault(checkpoint.size, []).append(
            _ExpectedRoot(checkpoint.root_hash, checkpoint=True)
        )
    for size, root_hash in known_roots.items():
        expected.setdefault(size, []).append(_ExpectedRoot(root_hash, checkpoint=False))
    return expected


def _consistency_leaves(checkpoints: Sequence[Checkpoint]) -> dict[int, list[int]]:
    """V7: the levels of recomputed subtree hashes the consistency proofs need, by the leaf
    whose append completes them (L4)."""
    leaves: dict[int, list[int]] = {}
    for older, newer in pairwise(checkpoints):
        if 0 < older.size < newer.size:
            for level, index in merkle.consistency_proof_nodes(older.size, newer.size):
                leaves.setdefault(((index + 1) << level) - 1, []).append(level)
    return leaves


# --- V1-V10, V15-V18: the walk over the log -------------------------------------------------------


@dataclass(slots=True)
class _NodeKey:
    """The key in force for a node: its latest NodeKeyEnrolled entry so far (V16)."""

    entry: int
    digest: bytes
    verifier: ReceiptVerifier
    fuel_per_core_second: int


@dataclass(slots=True)
class _Receipt:
    """A verified receipt met in the log, and what has been settled against it per kind."""

    entry: int
    charge: Charge
    settled: dict[int, int]


@dataclass(slots=True)
class _Pending:
    """A pending transfer met in the log, until it is resolved."""

    entry: int
    amount: int
    debit: int
    credit: int
    expires_ns: int
    status: int = int(PendingStatus.PENDING)


class _Walk:
    """V1-V10 and V15-V18 over the entries in order, with the frontier (L6) and the replay's
    state."""

    def __init__(
        self,
        head_size: int,
        accounts: Mapping[int, Account],
        expected: dict[int, list[_ExpectedRoot]],
        consistency_leaves: dict[int, list[int]],
        progress: Progress | None,
    ) -> None:
        self.head_size = head_size
        self.account_rows = accounts
        self.expected = expected
        self.consistency_leaves = consistency_leaves
        self.progress = progress
        self.size = 0
        self.last_timestamp_ns = 0
        self.transfers = 0
        self.nodes: list[bytes] = []  # the frontier (L6)
        self.subtrees: dict[tuple[int, int], bytes] = {}  # V7's recomputed hashes
        # Replay state (V8, V10), per account created so far: [debits_pending, debits_posted,
        # credits_pending, credits_posted, kind, 1 if debits_must_not_exceed_credits else 0].
        self.balances: dict[int, list[int]] = {}
        self.created_by: dict[int, int] = {}  # account id -> entry index
        self.pending: dict[bytes, _Pending] = {}  # every pending transfer, by id
        # V15-V18: the node keys in force, every verified receipt by digest, and the evidence
        # rows, read alongside the entries in entry order.
        self.node_keys: dict[str, _NodeKey] = {}
        self.node_key_entries = 0
        self.receipts: dict[bytes, _Receipt] = {}
        self.evidence_rows: Iterator[tuple[Any, ...]] = iter(())
        self.evidence_row: tuple[Any, ...] | None = None

    def root(self) -> bytes:
        nodes = self.nodes
        if not nodes:
            return merkle.EMPTY_ROOT
        result = nodes[-1]
        for node in reversed(nodes[:-1]):
            result = merkle.node_hash(node, result)
        return result

    def run(
        self,
        pages: Iterable[Sequence[tuple[int, bytes, bytes]]],
        transfer_rows: Iterator[tuple[Any, ...]],
    ) -> None:
        self._check_roots_at(0)
        self.evidence_row = next(self.evidence_rows, None)
        row = next(transfer_rows, None)
        for page in pages:
            row = self._page(page, row, transfer_rows)
            if self.progress is not None:
                self.progress(self.size, max(self.head_size, self.size))
        self._finish(row)

    def _page(  # noqa: PLR0912, PLR0915  (the hot loop stays one function: see the docstring)
        self,
        page: Sequence[tuple[int, bytes, bytes]],
        row: tuple[Any, ...] | None,
        transfer_rows: Iterator[tuple[Any, ...]],
    ) -> tuple[Any, ...] | None:
        """The hot loop: one page of entries. Returns the next unmatched transfer row."""
        leaf_prefix = sha256(b"\x00")
        node_prefix = sha256(b"\x01")
        parse = ledger_pb2.LedgerEntry.FromString
        flags_messages = _FLAGS_MESSAGES
        nodes = self.nodes
        expected = self.expected
        consistency = self.consistency_leaves
        balances = self.balances
        position = self.size
        last_ts = self.last_timestamp_ns
        transfers = 0
        row_at = None if row is None else row[_ENTRY]  # the entry the next row names
        try:
            for index, data, hashes in page:
                # V1: the rows are the log's positions 0, 1, 2, ... without gaps or duplicates.
                if index != position:
                    raise _row_error(position, index)
                # V2, V3 (L4, L6): recompute the leaf hash and every subtree this leaf completes;
                # the row must hold exactly those hashes. Stored hashes are never trusted.
                hasher = leaf_prefix.copy()
                hasher.update(data)
                current = hasher.digest()
                if position & 1:
                    completed = [current]
                    carry = position
                    while carry & 1:
                        hasher = node_prefix.copy()
                        hasher.update(nodes.pop())
                        hasher.update(current)
                        current = hasher.digest()
                        completed.append(current)
                        carry >>= 1
                    nodes.append(current)
                    if b"".join(completed) != hashes:
                        raise _hash_error(position, completed, hashes)
                    if position in consistency:
                        self._keep_subtrees(position, completed)
                else:
                    nodes.append(current)
                    if current != hashes:
                        raise _hash_error(position, [current], hashes)
                    if position in consistency:
                        self._keep_subtrees(position, [current])
                # V4: the bytes are a LedgerEntry that knows its own position.
                try:
                    entry = parse(data)
                except DecodeError:
                    raise EntryIntegrityError(
                        position, "the stored bytes are not a LedgerEntry (they hash as stored)"
                    ) from None
                if entry.index != position:
                    raise EntryIntegrityError(position, f"the entry claims index {entry.index}")
                # V5: ledger timestamps strictly increase (A6).
                ts = entry.timestamp_ns
                if ts <= last_ts:
                    raise EntryIntegrityError(
                        position,
                        f"timestamp {ts} is not after the previous entry's {last_ts} (A6)",
                    )
                last_ts = ts
                if row_at == position and row is not None:
                    # V9: the transfer row of this entry equals it, field by field (its columns
                    # unpacked once: locals are cheaper than indexing the row again).
                    (
                        rid,
                        debit_id,
                        credit_id,
                        amount,
                        pending_id,
                        user_data,
                        kind,
                        code,
                        flags,
                        timeout,
                        stamp,
                        result,
                        released,
                        _,
                    ) = row
                    recorded = entry.transfer_recorded
                    t = recorded.transfer
                    if (
                        t.id != rid
                        or t.debit_account_id != debit_id
                        or t.credit_account_id != credit_id
                        or t.amount != amount
                        or (t.pending_id or None) != pending_id
                        or (t.user_data or None) != user_data
                        or t.kind != kind
                        or t.code != code
                        or t.timeout_seconds != timeout
                        or t.timestamp_ns != stamp
                        or ts != stamp
                        or recorded.result != result
                        or t.flags != flags_messages.get(flags)
                    ):
                        raise _row_mismatch(position, entry, row)
                    # V17: a settlement against a receipt (its digest as user_data) follows it.
                    if code == _SETTLE:
                        self._settlement(position, row)
                    # V10: replay. The row equals the entry, so its plain Python values are used;
                    # the common case (an OK single-phase transfer) inline, the rest in _replay.
                    transfers += 1
                    if result == _OK:
                        debit = balances.get(debit_id)
                        credit = balances.get(credit_id)
                        if (
                            flags <= _LINKED
                            and debit is not None
                            and credit is not None
                            and debit[_KIND_AT] == kind == credit[_KIND_AT]
                            and not released
                        ):
                            debit[_DPO] += amount
                            credit[_CPO] += amount
                            if debit[_LIMITED_AT] and debit[_DP] + debit[_DPO] > debit[_CPO]:
                                raise _overdraft(position, row, debit)
                        else:
                            self._replay(position, row)
                    elif result not in _TRANSIENT or released:
                        raise _failure_error(position, row)
                    row = next(transfer_rows, None)
                    row_at = None if row is None else row[_ENTRY]
                else:
                    if row is not None and (row_at is None or row_at < position):
                        raise _orphan_row(row, position)
                    self._other_entry(position, entry)
                position += 1
                if position in expected:
                    self._check_roots_at(position)
        except TypeError as error:
            # SQLite keeps any type in any column: a tampered value of the wrong type.
            raise EntryIntegrityError(
                position, f"a stored value has the wrong type ({error})"
            ) from None
        self.size = position
        self.last_timestamp_ns = last_ts
        self.transfers += transfers
        return row

    def _replay(self, position: int, row: tuple[Any, ...]) -> None:
        """V10: apply one OK transfer (A12) to the replayed balances (all but the common case)."""
        debit = self.balances.get(row[_DEBIT])
        credit = self.balances.get(row[_CREDIT])
        kind = row[_KIND]
        if debit is None or credit is None or debit[_KIND_AT] != kind or credit[_KIND_AT] != kind:
            raise _accounts_error(position, row, self.balances)
        flags = row[_FLAGS]
        amount = row[_AMOUNT]
        if flags & _RESOLVES:
            released = self._resolve(position, row)
            debit[_DP] -= released
            credit[_CP] -= released
            if flags & _POST:
                debit[_DPO] += amount
                credit[_CPO] += amount
            return
        if row[_RELEASED]:
            raise EntryIntegrityError(
                position,
                f"its transfer row says it released {row[_RELEASED]}, but it resolves nothing",
            )
        if flags & _PENDING:
            debit[_DP] += amount
            credit[_CP] += amount
            timeout = row[_TIMEOUT]
            self.pending[row[_ID]] = _Pending(
                position,
                amount,
                row[_DEBIT],
                row[_CREDIT],
                row[_TIMESTAMP] + timeout * NANOS_PER_SECOND if timeout else 0,
            )
        else:
            debit[_DPO] += amount
            credit[_CPO] += amount
        if debit[_LIMITED_AT] and debit[_DP] + debit[_DPO] > debit[_CPO]:
            raise _overdraft(position, row, debit)

    def _resolve(self, position: int, row: tuple[Any, ...]) -> int:
        """V10 (A11, A12): a post or void resolves one earlier OK pending transfer, once."""
        pending_id = row[_PENDING_ID]
        found = self.pending.get(pending_id) if pending_id else None
        if found is None:
            raise EntryIntegrityError(
                position,
                f"it resolves pending transfer {_hex(pending_id)}, which no earlier entry "
                "recorded as a successful pending transfer",
            )
        if found.status != PendingStatus.PENDING:
            raise EntryIntegrityError(
                position,
                f"it resolves pending transfer {_hex(pending_id)} (entry {found.entry}) again; "
                f"that one was already {PendingStatus(found.status).name.lower()}",
            )
        if (found.debit, found.credit) != (row[_DEBIT], row[_CREDIT]):
            raise EntryIntegrityError(
                position,
                f"it resolves pending transfer {_hex(pending_id)} (entry {found.entry}) between "
                f"other accounts ({row[_DEBIT]}->{row[_CREDIT]}, not "
                f"{found.debit}->{found.credit})",
            )
        expiry = row[_CODE] == _EXPIRE
        post = bool(row[_FLAGS] & _POST)
        amount = row[_AMOUNT]
        if (post and amount > found.amount) or (not post and amount != found.amount):
            raise EntryIntegrityError(
                position,
                f"it {'posts' if post else 'voids'} {amount} of pending transfer "
                f"{_hex(pending_id)} (entry {found.entry}), which reserved {found.amount}",
            )
        if row[_RELEASED] != found.amount:
            raise EntryIntegrityError(
                position,
                f"its transfer row says it released {row[_RELEASED]}; the pending transfer "
                f"(entry {found.entry}) reserved {found.amount}",
            )
        due = found.expires_ns != 0 and found.expires_ns <= row[_TIMESTAMP]
        if expiry != due or (expiry and post):
            raise EntryIntegrityError(
                position,
                f"it {'expires' if expiry else 'resolves'} pending transfer {_hex(pending_id)} "
                f"(entry {found.entry}) {'before' if expiry else 'after'} its timeout "
                f"(expires_ns {found.expires_ns}) (A12)",
            )
        if expiry:
            found.status = int(PendingStatus.EXPIRED)
        elif post:
            found.status = int(PendingStatus.POSTED)
        else:
            found.status = int(PendingStatus.VOIDED)
        return found.amount

    def _other_entry(self, position: int, entry: ledger_pb2.LedgerEntry) -> None:
        """V8, V9, V15: an entry with no transfer row must be an account creation or evidence."""
        if entry.HasField("node_key_enrolled") or entry.HasField("receipt_recorded"):
            self._evidence(position, entry)
            return
        if entry.HasField("transfer_recorded"):
            transfer_id = _hex(entry.transfer_recorded.transfer.id)
            raise EntryIntegrityError(
                position, f"it records transfer {transfer_id}, but no transfer row matches it"
            )
        if not entry.HasField("account_created"):
            raise EntryIntegrityError(position, "the entry has no body")
        created = entry.account_created
        account_id = created.id
        if account_id in self.created_by:
            raise EntryIntegrityError(
                position,
                f"it creates account {account_id} again (entry {self.created_by[account_id]} "
                "created it)",
            )
        row = self.account_rows.get(account_id)
        label = _entry_owner(created)
        if row is None:
            raise EntryIntegrityError(
                position, f"it creates account {account_id} ({label}), which has no account row"
            )
        flags = _LIMITED if created.debits_must_not_exceed_credits else 0
        stored = (int(row.kind), row.tenant or "", int(row.system or 0), row.flags)
        logged = (created.kind, created.tenant, created.system, flags)
        if stored != logged or row.timestamp_ns != entry.timestamp_ns:
            raise EntryIntegrityError(
                position,
                f"it creates account {account_id} as {label} (flags {flags}, timestamp "
                f"{entry.timestamp_ns}); the account row says {_owner(row)} (flags {row.flags}, "
                f"timestamp {row.timestamp_ns})",
            )
        self.created_by[account_id] = position
        self.balances[account_id] = [0, 0, 0, 0, created.kind, 1 if flags else 0]

    def _evidence(self, position: int, entry: ledger_pb2.LedgerEntry) -> None:
        """V15, V16, V18: an evidence entry decodes, a receipt verifies under the node's key in
        force and says what its entry says, and the evidence row of the entry matches it."""
        try:
            evidence = evidence_of(entry)
        except ValueError as error:
            raise EntryIntegrityError(position, f"its evidence is malformed: {error}") from None
        assert evidence is not None
        digest = evidence.digest()
        logged = (digest, int(evidence.kind), evidence.node, evidence.request_id)
        self._evidence_row(position, logged)
        if isinstance(evidence, NodeKeyEvidence):
            current = self.node_keys.get(evidence.node)
            if current is not None and current.digest == digest:
                raise EntryIntegrityError(
                    position,
                    f"it enrolls node {evidence.node}'s key of entry {current.entry} again, which "
                    "is still in force (evidence is appended at most once, E5)",
                )
            self.node_keys[evidence.node] = _NodeKey(
                position,
                digest,
                ReceiptVerifier(evidence.public_key, evidence.key_id),
                evidence.fuel_per_core_second,
            )
            self.node_key_entries += 1
            return
        seen = self.receipts.get(digest)
        if seen is not None:
            raise EntryIntegrityError(
                position,
                f"it records receipt {digest.hex()} again (entry {seen.entry} recorded it; "
                "evidence is appended at most once, E5)",
            )
        key = self.node_keys.get(evidence.node)
        if key is None:
            raise EntryIntegrityError(
                position,
                f"it records a receipt of node {evidence.node}, but no NodeKeyEnrolled entry of "
                "that node comes before it",
            )
        try:
            receipt = key.verifier.open(evidence.receipt)
        except ReceiptError as error:
            raise EntryIntegrityError(
                position,
                f"its receipt does not verify under node {evidence.node}'s key of entry "
                f"{key.entry}: {error}",
            ) from None
        if (receipt.request_id, receipt.node) != (evidence.request_id, evidence.node):
            raise EntryIntegrityError(
                position,
                f"it records a receipt for request {evidence.request_id} of node "
                f"{evidence.node}, but the receipt is for request {receipt.request_id} of node "
                f"{receipt.node}",
            )
        problem = core_seconds_problem(receipt, key.fuel_per_core_second)
        if problem is not None:
            raise EntryIntegrityError(
                position, f"its receipt {problem} (node {evidence.node}'s key of entry {key.entry})"
            )
        self.receipts[digest] = _Receipt(position, charge_of(receipt), {})

    def _evidence_row(self, position: int, logged: tuple[object, ...]) -> None:
        """V18: the next evidence row is this entry's, equal to it."""
        row = self.evidence_row
        if row is None or row[0] != position:
            if row is not None and row[0] < position:
                raise _orphan_evidence_row(row)
            raise EntryIntegrityError(position, "the evidence entry has no evidence row")
        for column, stored, in_log in zip(_EVIDENCE_FIELDS, row[1:], logged, strict=True):
            if stored != in_log:
                raise EntryIntegrityError(
                    position,
                    f"its evidence row says {column} {_show(stored)}, the entry says "
                    f"{_show(in_log)}",
                )
        self.evidence_row = next(self.evidence_rows, None)

    def _settlement(self, position: int, row: tuple[Any, ...]) -> None:
        """V17: a `settle` transfer whose user_data is 32 bytes settles against the receipt
        with that digest, recorded before it; per kind, the OK ones post at most its charge."""
        user_data = row[_USER_DATA]
        if user_data is None or len(user_data) != _DIGEST_BYTES:
            return
        seen = self.receipts.get(bytes(user_data))
        if seen is None:
            raise EntryIntegrityError(
                position,
                f"it settles against receipt {bytes(user_data).hex()} (its user_data), but no "
                "earlier ReceiptRecorded entry has that digest",
            )
        if row[_RESULT] != _OK:
            return
        kind = row[_KIND]
        settled = seen.settled.get(kind, 0) + row[_AMOUNT]
        charged = seen.charge.of(Kind(kind)) if kind in _KINDS else 0
        if settled > charged:
            raise EntryIntegrityError(
                position,
                f"with it, {settled} {_kind_label(kind)} is settled against receipt "
                f"{bytes(user_data).hex()} (entry {seen.entry}), which backs {charged}",
            )
        seen.settled[kind] = settled

    def _keep_subtrees(self, position: int, completed: Sequence[bytes]) -> None:
        for level in self.consistency_leaves[position]:
            # L4: leaf i completes the perfect subtree (h, k) with (k + 1) * 2^h - 1 = i.
            self.subtrees[(level, ((position + 1) >> level) - 1)] = completed[level]

    def _check_roots_at(self, size: int) -> None:
        """V6: the root over the first `size` entries is what was signed (or trusted) there."""
        root = self.root()
        for item in self.expected.get(size, ()):
            if item.root_hash == root:
                continue
            if item.checkpoint:
                raise CheckpointIntegrityError(
                    size,
                    f"its root differs from the root recomputed over entries 0..{size - 1}: an "
                    "entry below it was changed and its stored hashes rewritten",
                )
            raise CheckpointIntegrityError(
                size,
                "the root recomputed over the stored entries differs from the checkpoint of "
                "this size verified before: the history was rewritten",
            )

    def _finish(self, row: tuple[Any, ...] | None) -> None:
        size = self.size
        if size < self.head_size:
            raise EntryIntegrityError(
                size, f"the entry is missing (the head row says the log has {self.head_size})"
            )
        if size > self.head_size:
            raise EntryIntegrityError(
                self.head_size,
                f"the head row says the log has {self.head_size} entries, but entries up to "
                f"{size - 1} are stored",
            )
        if row is not None:
            raise _orphan_row(row, size)
        if self.evidence_row is not None:
            raise _orphan_evidence_row(self.evidence_row)
        for expected_size, items in sorted(self.expected.items()):
            if expected_size > size:
                what = "stored checkpoint" if items[0].checkpoint else "verified checkpoint"
                raise CheckpointIntegrityError(
                    expected_size,
                    f"the {what} covers {expected_size} entries, but the log has only {size}: "
                    "entries were removed",
                )


def _row_error(position: int, index: int) -> EntryIntegrityError:
    """V1: the row at `position` carries another index."""
    if index > position:
        return EntryIntegrityError(
            position, f"the entry is missing (the next stored entry is {index})"
        )
    return EntryIntegrityError(index, f"it is stored twice, or out of order at {position}")


def _orphan_evidence_row(row: tuple[Any, ...]) -> EntryIntegrityError:
    """V18: an evidence row whose entry records no evidence (or does not exist)."""
    return EntryIntegrityError(
        int(row[0]), "an evidence row points at this entry, but the entry records no evidence"
    )


_EVIDENCE_FIELDS = ("digest", "kind", "node", "request_id")
_KINDS = frozenset(int(kind) for kind in Kind)


def _hash_error(position: int, completed: Sequence[bytes], stored: bytes) -> EntryIntegrityError:
    """V2, V3: say which stored hash of the row differs from the recomputed one."""
    if stored[:HASH_SIZE] != completed[0]:
        return EntryIntegrityError(
            position,
            "leaf hash differs from the stored hash: the entry's bytes, or its stored leaf "
            "hash, were altered",
        )
    if len(stored) != len(completed) * HASH_SIZE:
        return EntryIntegrityError(
            position,
            f"the row stores {len(stored)} bytes of hashes; the leaf completes "
            f"{len(completed) - 1} subtrees, so it must store {len(completed) * HASH_SIZE} (L4)",
        )
    for level in range(1, len(completed)):
        part = stored[level * HASH_SIZE : (level + 1) * HASH_SIZE]
        if part != completed[level]:
            first = position + 1 - (1 << level)
            return EntryIntegrityError(
                position,
                f"stored hash of level {level} (leaves {first}..{position}) differs from the "
                "hash recomputed from those leaves",
            )
    raise AssertionError("a row that differs has a differing part")


def _row_mismatch(
    position: int, entry: ledger_pb2.LedgerEntry, row: tuple[Any, ...]
) -> EntryIntegrityError:
    """V9: name the first column of the transfer row that differs from the entry."""
    recorded = entry.transfer_recorded
    t = recorded.transfer
    if not entry.HasField("transfer_recorded"):
        return EntryIntegrityError(
            position,
            f"transfer row {_hex(row[_ID])} claims this entry, but it records "
            f"{entry.WhichOneof('body') or 'nothing'}",
        )
    flags = t.flags
    logged = (
        t.id,
        t.debit_account_id,
        t.credit_account_id,
        t.amount,
        t.pending_id or None,
        t.user_data or None,
        t.kind,
        t.code,
        int(flags.linked)
        | int(flags.pending) << 1
        | int(flags.post_pending) << 2
        | int(flags.void_pending) << 3,
        t.timeout_seconds,
        t.timestamp_ns,
        recorded.result,
    )
    for column, (stored, in_log) in enumerate(zip(row, logged, strict=False)):
        if stored != in_log:
            return EntryIntegrityError(
                position,
                f"transfer row {_hex(row[_ID])}: stored {_ROW_FIELDS[column]} "
                f"{_show(stored)}, the entry says {_show(in_log)}",
            )
    return EntryIntegrityError(
        position,
        f"transfer row {_hex(row[_ID])}: stored timestamp_ns {row[_TIMESTAMP]}, the entry's "
        f"timestamp is {entry.timestamp_ns}",
    )


def _failure_error(position: int, row: tuple[Any, ...]) -> EntryIntegrityError:
    result = _result_label(row[_RESULT])
    if row[_RELEASED]:
        return EntryIntegrityError(
            position, f"a recorded failure ({result}) cannot release {row[_RELEASED]}"
        )
    return EntryIntegrityError(
        position,
        f"it records a failure with result {result}, which the ledger never records (A9)",
    )


def _accounts_error(
    position: int, row: tuple[Any, ...], balances: Mapping[int, list[int]]
) -> EntryIntegrityError:
    for side, account_id in (("debits", row[_DEBIT]), ("credits", row[_CREDIT])):
        if account_id not in balances:
            return EntryIntegrityError(
                position, f"it {side} account {account_id}, which no earlier entry created"
            )
    return EntryIntegrityError(
        position,
        f"it moves kind {_kind_label(row[_KIND])} between accounts of kinds "
        f"{_kind_label(balances[row[_DEBIT]][_KIND_AT])} and "
        f"{_kind_label(balances[row[_CREDIT]][_KIND_AT])}",
    )


def _overdraft(position: int, row: tuple[Any, ...], debit: list[int]) -> EntryIntegrityError:
    return EntryIntegrityError(
        position,
        f"it overdraws tenant account {row[_DEBIT]}: after it, debits_posted {debit[_DPO]} + "
        f"debits_pending {debit[_DP]} exceed credits_posted {debit[_CPO]} (A3)",
    )


def _orphan_row(row: tuple[Any, ...], position: int) -> EntryIntegrityError:
    """V9: a transfer row that no entry records (in timestamp order, it comes at `position`)."""
    if row[_ENTRY] is None:
        return EntryIntegrityError(
            position,
            f"transfer row {_hex(row[_ID])} comes here in timestamp order, but names no entry",
        )
    return EntryIntegrityError(
        int(row[_ENTRY]),
        f"transfer row {_hex(row[_ID])} points at this entry, but the entry does not record it",
    )


# --- V7, V11-V14: after the walk ------------------------------------------------------------------


def _check_consistency(
    checkpoints: Sequence[Checkpoint], subtrees: Mapping[tuple[int, int], bytes]
) -> None:
    """V7 (L9): each checkpoint is a prefix of the next, by a proof from recomputed hashes."""
    for older, newer in pairwise(checkpoints):
        if older.size == 0:
            continue  # L9: no proof from the empty tree; its root was checked to be EMPTY_ROOT
        proof = merkle.consistency_proof(older.size, newer.size, subtrees.__getitem__)
        try:
            merkle.verify_consistency(
                older.size, newer.size, proof, older.root_hash, newer.root_hash
            )
        except LedgerIntegrityError as error:
            raise CheckpointIntegrityError(
                newer.size, f"it is not consistent with checkpoint {older.size}: {error}"
            ) from error


def _check_account_rows(accounts: Mapping[int, Account], walk: _Walk) -> None:
    """V11: every account row was created by an entry of the log."""
    for account_id, account in accounts.items():
        if account_id not in walk.created_by:
            raise AccountIntegrityError(
                account_id, _owner(account), "the account row was created by no entry of the log"
            )


def _check_balances(accounts: Mapping[int, Account], balances: Mapping[int, list[int]]) -> None:
    """V12: every account's stored balances equal the replay of the log."""
    for account_id, account in accounts.items():
        replayed = balances[account_id][:4]
        stored = account.balances()
        if tuple(replayed) == stored:
            continue
        for name, value, replay in zip(_BALANCE_NAMES, stored, replayed, strict=True):
            if value != replay:
                raise BalanceMismatchError(
                    account_id, _owner(account), f"stored {name} {value}, replay gives {replay}"
                )


def _check_invariants(accounts: Mapping[int, Account]) -> None:
    """V13: the ledger's invariants on the stored balances (implied by V12; checked anyway,
    as the engine asserts them after every batch)."""
    check_balances(accounts.values())


def _check_pending(rows: Iterable[tuple[bytes, int, int]], walk: _Walk) -> None:
    """V14: the pending-status table says what the replay says about each pending transfer."""
    seen: set[bytes] = set()
    for transfer_id, status, expires_ns in rows:
        found = walk.pending.get(transfer_id)
        if found is None:
            raise InvariantViolationError(
                f"pending status row {_hex(transfer_id)} belongs to no pending transfer of the log"
            )
        if (status, expires_ns) != (found.status, found.expires_ns):
            raise EntryIntegrityError(
                found.entry,
                f"the status row of this pending transfer says {_status_label(status)} "
                f"(expires_ns {expires_ns}); the replay says {_status_label(found.status)} "
                f"(expires_ns {found.expires_ns})",
            )
        seen.add(transfer_id)
    for transfer_id, found in walk.pending.items():
        if transfer_id not in seen:
            raise EntryIntegrityError(
                found.entry, f"pending transfer {_hex(transfer_id)} has no status row"
            )


# --- V19, V20: the checkpoint chain and the head row ----------------------------------------------


def _head_of(row: tuple[Any, ...] | None) -> tuple[int, int, int, int, bytes | None]:
    """The head row, its types checked (SQLite keeps any type in any column)."""
    if row is None:
        raise HeadIntegrityError("row", "there is no head row (id 1): it was deleted or altered")
    size, last_timestamp_ns, next_account_id, checkpoints, checkpoint_hash = row
    counters = (size, last_timestamp_ns, next_account_id, checkpoints)
    if not all(type(value) is int for value in counters) or not (
        checkpoint_hash is None or isinstance(checkpoint_hash, bytes)
    ):
        raise HeadIntegrityError("row", f"the row is malformed: {row!r}")
    return size, last_timestamp_ns, next_account_id, checkpoints, checkpoint_hash


def _check_chain(checkpoints: Sequence[Checkpoint], timestamps: Sequence[int]) -> None:
    """V19 (L19): the stored checkpoints are one unbroken chain. Each one signed with a chain
    line is the log's checkpoint number position + 1, names the stored checkpoint before it,
    and was signed at the time its row says. Checkpoints without the line (signed before the
    chain existed) may only come first."""
    chained: Checkpoint | None = None
    for position, (checkpoint, timestamp_ns) in enumerate(
        zip(checkpoints, timestamps, strict=True)
    ):
        size = checkpoint.size
        try:
            link = chain_link_of(checkpoint)
        except LedgerIntegrityError as error:
            raise CheckpointIntegrityError(size, f"its chain line is malformed: {error}") from None
        if link is None:
            if chained is not None:
                raise CheckpointIntegrityError(
                    size,
                    f"it has no chain line (L19), but checkpoint {chained.size} before it has one: "
                    "every checkpoint after the first chained one carries it",
                )
            continue
        chained = checkpoint
        if link.timestamp_ns != timestamp_ns:
            raise CheckpointIntegrityError(
                size,
                f"its stored timestamp_ns {timestamp_ns} differs from the time it was signed "
                f"with, {link.timestamp_ns} (L19)",
            )
        before = checkpoints[position - 1] if position else None
        if link.seq > position + 1:
            raise CheckpointIntegrityError(
                size,
                f"it is the log's checkpoint #{link.seq}, but only {position} stored checkpoints "
                f"come before it: {_deleted_before(link.seq, before)}",
            )
        if link.seq < position + 1:
            raise CheckpointIntegrityError(
                size,
                f"it is the log's checkpoint #{link.seq}, but {position} stored checkpoints come "
                "before it: a checkpoint was stored that the log never signed in this sequence",
            )
        expected = body_hash(before) if before is not None else None
        if link.previous != expected:
            raise CheckpointIntegrityError(
                size,
                f"it names as the checkpoint before it one with body hash {_show(link.previous)}, "
                f"but the stored checkpoint before it{f' ({before.size})' if before else ''} has "
                f"{_show(expected)}: the checkpoint before it was replaced",
            )


def _deleted_before(seq: int, before: Checkpoint | None) -> str:
    """V19: which checkpoints are missing before checkpoint #seq, as precisely as is known."""
    known = chain_link_of(before) if before is not None else None
    first = 1 if before is None else known.seq + 1 if known is not None else None
    if first is None:
        return "checkpoints signed before it were deleted"
    numbers = f"#{first}" if first == seq - 1 else f"#{first}..#{seq - 1}"
    where = f" (after checkpoint {before.size})" if before is not None else ""
    return f"checkpoint {numbers}{where} was deleted"


def _check_head(
    head: tuple[int, int, int, int, bytes | None],
    checkpoints: Sequence[Checkpoint],
    walk: _Walk,
) -> None:
    """V20: every column of the head row is derived from the log and its checkpoints: its size
    (V1), the newest entry's timestamp, one more than the highest account id the log created,
    and the count and body hash of the stored checkpoints' newest (L19)."""
    _, last_timestamp_ns, next_account_id, count, newest_hash = head
    if last_timestamp_ns != walk.last_timestamp_ns:
        entry = f"the newest entry ({walk.size - 1})" if walk.size else "the empty log"
        raise HeadIntegrityError(
            "last_timestamp_ns",
            f"last_timestamp_ns {last_timestamp_ns}, but {entry} has timestamp "
            f"{walk.last_timestamp_ns}",
        )
    expected_id = max(walk.created_by, default=0) + 1
    if next_account_id != expected_id:
        raise HeadIntegrityError(
            "next_account_id",
            f"next_account_id {next_account_id}, but the highest account id the log created is "
            f"{expected_id - 1}, so the next is {expected_id}",
        )
    newest = checkpoints[-1] if checkpoints else None
    stored_hash = body_hash(newest) if newest is not None else None
    stored = f"the newest stored is checkpoint {newest.size}" if newest else "none is stored"
    if count > len(checkpoints):
        raise HeadIntegrityError(
            "checkpoints",
            f"it records {count} checkpoints signed, the newest with body hash "
            f"{_show(newest_hash)}, but {len(checkpoints)} are stored ({stored}): "
            f"checkpoint #{len(checkpoints) + 1}"
            f"{f'..#{count}' if count > len(checkpoints) + 1 else ''} was deleted",
        )
    if count < len(checkpoints):
        raise HeadIntegrityError(
            "checkpoints",
            f"it records {count} checkpoints signed, but {len(checkpoints)} are stored",
        )
    if newest_hash != stored_hash:
        raise HeadIntegrityError(
            "checkpoint_hash",
            f"checkpoint_hash {_show(newest_hash)}, but {stored} with body hash "
            f"{_show(stored_hash)}: the newest checkpoint was replaced",
        )


def _check_known_stored(
    checkpoints: Sequence[Checkpoint], known_roots: Mapping[int, bytes]
) -> None:
    """V19: a checkpoint verified before (from this broker's stored or served checkpoints) is
    still stored: a signed checkpoint never disappears. Catches the newest checkpoints dropped
    with the head row made to agree, which no audit of the database alone can see."""
    stored = {checkpoint.size for checkpoint in checkpoints}
    for size in sorted(known_roots):
        if size not in stored:
            newest = checkpoints[-1].size if checkpoints else None
            raise CheckpointIntegrityError(
                size,
                f"the checkpoint of this size verified before is not stored (the newest stored "
                f"is {newest if newest is not None else 'none'}): the log's signed checkpoints "
                "were deleted, or the database was restored from an older copy",
            )


# --- labels for messages --------------------------------------------------------------------------


def _hex(raw: object) -> str:
    if isinstance(raw, bytes | bytearray | memoryview):
        return bytes(raw).hex()
    return str(raw)


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex() or "(empty)"
    if value is None:
        return "(none)"
    return str(value)


def _kind_label(value: int) -> str:
    try:
        return Kind(value).label
    except ValueError:
        return f"#{value}"


def _result_label(value: int) -> str:
    try:
        return Result(value).label
    except ValueError:
        return f"#{value}"


def _status_label(value: int) -> str:
    try:
        return PendingStatus(value).name.lower()
    except ValueError:
        return f"#{value}"


def _owner(account: Account) -> str:
    owner = account.tenant or (account.system.name.lower() if account.system else "?")
    return f"{owner} {_kind_label(int(account.kind))}"


def _entry_owner(created: ledger_pb2.AccountCreated) -> str:
    if created.tenant:
        owner = created.tenant
    else:
        try:
            owner = SystemAccount(created.system).name.lower()
        except ValueError:
            owner = f"system #{created.system}"
    return f"{owner} {_kind_label(created.kind)}"
