"""The ledger's state machine: applies batches of transfers to accounts, TigerBeetle-style.

Owns: every rule of docs/ledger-format.md "Accounts and transfers" (A1-A12): validation in
order of precedence, idempotency (exists, exists_with_different_*, id_already_failed), two-phase
transfers (pending, post in full or part, void, expiry), linked chains (all or nothing), balance
limits and overflow. Pure: it works on a `WorkingSet` the store filled for the batch and records
what changed; it never does I/O and never reads a clock (timestamps come from the caller).

Does not own: loading or saving (orbitq.ledger.store), who may move whose tokens (the broker's
service layer), or the signed log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

from orbitq.ledger.model import (
    ACCOUNT_ID_MAX,
    AMOUNT_MAX,
    ID_MAX,
    NANOS_PER_SECOND,
    TIMESTAMP_MAX,
    TRANSIENT_RESULTS,
    Account,
    AccountFlag,
    Code,
    Outcome,
    PendingStatus,
    Result,
    StoredTransfer,
    Transfer,
    TransferFlag,
)

# The hot path works on plain ints: IntFlag arithmetic costs about a microsecond per operation,
# and `~` of an IntFlag stays inside the flag's own bits (it would hide unknown flags).
_LINKED = int(TransferFlag.LINKED)
_PENDING = int(TransferFlag.PENDING)
_POST = int(TransferFlag.POST_PENDING)
_VOID = int(TransferFlag.VOID_PENDING)
_RESOLVES = _POST | _VOID
_TWO_PHASE = _PENDING | _POST | _VOID
_UNKNOWN_FLAGS = ~(_LINKED | _TWO_PHASE)
_LIMITED = int(AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS)
# An enum member read through its class costs ~0.1 us on CPython 3.11; the per-transfer path
# reads these module globals instead.
_OK = Result.OK
_EXISTS = Result.EXISTS


@dataclass
class WorkingSet:
    """The part of the ledger a batch can touch, loaded by the store, changed by the engine.

    `transfers` must hold every stored transfer whose id appears in the batch as an id or a
    pending_id, or the store must detect the conflict when it writes (orbitq.ledger.store.write).
    `pending_status` holds the status of every pending transfer in `transfers`.
    """

    accounts: dict[int, Account]
    transfers: dict[int, StoredTransfer]
    pending_status: dict[int, PendingStatus]
    last_timestamp_ns: int
    # What the engine did, in order: the store writes exactly this.
    created: list[StoredTransfer] = field(default_factory=list)
    touched_accounts: set[int] = field(default_factory=set)
    # pending id -> new status (PENDING for a new pending transfer).
    pending_changes: dict[int, PendingStatus] = field(default_factory=dict)


# One undo step: restores what a tentative chain member changed.
_Undo = Callable[[], None]


class Engine:
    """Applies transfers to a WorkingSet. One Engine per group commit."""

    def __init__(self, state: WorkingSet, now_ns: int) -> None:
        self._state = state
        self._now_ns = now_ns

    # -- timestamps --------------------------------------------------------------------------

    def next_timestamp(self) -> int:
        # A6: ledger timestamps strictly increase, even if the clock stalls or steps back.
        state = self._state
        ts = max(self._now_ns, state.last_timestamp_ns + 1)
        state.last_timestamp_ns = ts
        return ts

    # -- batches -----------------------------------------------------------------------------

    def create_transfers(self, batch: Sequence[Transfer]) -> list[Outcome]:
        """Apply one client batch; one Outcome per transfer, in order (A7, A8)."""
        outcomes: list[Outcome | None] = [None] * len(batch)
        index = 0
        count = len(batch)
        while index < count:
            if not batch[index].flags & _LINKED:
                outcomes[index] = self._create_single(index, batch[index])
                index += 1
                continue
            end = index
            while end < count and batch[end].flags & _LINKED:
                end += 1
            if end == count:
                # A8: the last transfer of a batch may not leave a chain open.
                self._fail_chain(outcomes, index, count, count - 1, Result.LINKED_EVENT_CHAIN_OPEN)
                break
            self._create_chain(batch, outcomes, index, end + 1)
            index = end + 1
        done = [outcome for outcome in outcomes if outcome is not None]
        assert len(done) == count
        return done

    def _create_single(self, index: int, transfer: Transfer) -> Outcome:
        result, stored, original = self._apply(transfer, None)
        if result is _OK or result is _EXISTS:
            return _outcome(index, result, None, stored)
        self._record_failure(transfer, result)
        return _outcome(index, result, original, None)

    def _create_chain(
        self, batch: Sequence[Transfer], outcomes: list[Outcome | None], start: int, end: int
    ) -> None:
        undo: list[_Undo] = []
        created_mark = len(self._state.created)
        applied: list[Outcome] = []
        for index in range(start, end):
            result, stored, original = self._apply(batch[index], undo)
            if result is _OK or result is _EXISTS:
                applied.append(_outcome(index, result, None, stored))
                continue
            # A8: the first failure fails the chain; everything it did is rolled back.
            for step in reversed(undo):
                step()
            del self._state.created[created_mark:]
            self._fail_chain(outcomes, start, end, index, result, original)
            self._record_failure(batch[index], result)
            return
        for outcome in applied:
            outcomes[outcome.index] = outcome

    def _fail_chain(
        self,
        outcomes: list[Outcome | None],
        start: int,
        end: int,
        failed: int,
        result: Result,
        original: Result | None = None,
    ) -> None:
        for index in range(start, end):
            if index == failed:
                outcomes[index] = Outcome(index, result, original_result=original)
            else:
                outcomes[index] = Outcome(index, Result.LINKED_EVENT_FAILED)

    def _record_failure(self, transfer: Transfer, result: Result) -> None:
        # A9: transient failures are recorded so a retry cannot succeed later.
        if result not in TRANSIENT_RESULTS:
            return
        stored = _stored(_stamped(transfer, self.next_timestamp()), result, 0)
        self._state.transfers[transfer.id] = stored
        self._state.created.append(stored)

    # -- one transfer ------------------------------------------------------------------------

    def _apply(
        self, t: Transfer, undo: list[_Undo] | None
    ) -> tuple[Result, StoredTransfer | None, Result | None]:
        """Validate and apply one transfer: (result, stored transfer, original result)."""
        if t.timestamp_ns != 0:
            return Result.TIMESTAMP_MUST_BE_ZERO, None, None
        if t.id == 0:
            return Result.ID_MUST_NOT_BE_ZERO, None, None
        if t.id == ID_MAX:
            return Result.ID_MUST_NOT_BE_INT_MAX, None, None
        existing = self._state.transfers.get(t.id)
        if existing is not None:
            if existing.result is not _OK:
                return Result.ID_ALREADY_FAILED, None, existing.result
            return _compare_existing(existing, t), existing, None
        flags = t.flags
        two_phase = flags & _TWO_PHASE
        if flags & _UNKNOWN_FLAGS or two_phase & (two_phase - 1):  # more than one bit set
            return Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE, None, None
        if flags & _RESOLVES:
            return self._apply_resolution(t, undo)
        return self._apply_transfer(t, undo)

    def _apply_transfer(
        self, t: Transfer, undo: list[_Undo] | None
    ) -> tuple[Result, StoredTransfer | None, Result | None]:
        """A single-phase or pending transfer (A10)."""
        debit_id, credit_id, amount = t.debit_account_id, t.credit_account_id, t.amount
        pending = bool(t.flags & _PENDING)
        failure = _check_fields(t, pending)
        if failure is not None:
            return failure, None, None
        accounts = self._state.accounts
        debit = accounts.get(debit_id)
        if debit is None:
            return Result.DEBIT_ACCOUNT_NOT_FOUND, None, None
        credit = accounts.get(credit_id)
        if credit is None:
            return Result.CREDIT_ACCOUNT_NOT_FOUND, None, None
        if debit.kind != credit.kind:
            return Result.ACCOUNTS_MUST_HAVE_THE_SAME_KIND, None, None
        if t.kind != debit.kind:
            return Result.TRANSFER_MUST_HAVE_THE_SAME_KIND_AS_ACCOUNTS, None, None
        if pending:
            if debit.debits_pending + amount > AMOUNT_MAX:
                return Result.OVERFLOWS_DEBITS_PENDING, None, None
            if credit.credits_pending + amount > AMOUNT_MAX:
                return Result.OVERFLOWS_CREDITS_PENDING, None, None
        else:
            if debit.debits_posted + amount > AMOUNT_MAX:
                return Result.OVERFLOWS_DEBITS_POSTED, None, None
            if credit.credits_posted + amount > AMOUNT_MAX:
                return Result.OVERFLOWS_CREDITS_POSTED, None, None
        if debit.debits_pending + debit.debits_posted + amount > AMOUNT_MAX:
            return Result.OVERFLOWS_DEBITS, None, None
        if credit.credits_pending + credit.credits_posted + amount > AMOUNT_MAX:
            return Result.OVERFLOWS_CREDITS, None, None
        timestamp = self.next_timestamp()
        if t.timeout_seconds and timestamp + t.timeout_seconds * NANOS_PER_SECOND > TIMESTAMP_MAX:
            return Result.OVERFLOWS_TIMEOUT, None, None
        if debit.flags & _LIMITED and (
            debit.debits_pending + debit.debits_posted + amount > debit.credits_posted
        ):
            return Result.EXCEEDS_CREDITS, None, None
        if undo is not None:
            undo.append(_balance_restorer(debit))
            undo.append(_balance_restorer(credit))
        if pending:
            debit.debits_pending += amount
            credit.credits_pending += amount
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
        stored = _stored(_stamped(t, timestamp), _OK, 0)
        self._store(stored, undo)
        if pending:
            self._set_pending(t.id, PendingStatus.PENDING, undo)
        return _OK, stored, None

    def _apply_resolution(
        self, t: Transfer, undo: list[_Undo] | None
    ) -> tuple[Result, StoredTransfer | None, Result | None]:
        """Post (all or part) or void a pending transfer (A11)."""
        post = bool(t.flags & _POST)
        failure = _check_resolution_fields(t)
        if failure is not None:
            return failure, None, None
        found = self._state.transfers.get(t.pending_id)
        if found is None or found.result is not Result.OK:
            return Result.PENDING_TRANSFER_NOT_FOUND, None, None
        p = found.transfer
        if not p.flags & _PENDING:
            return Result.PENDING_TRANSFER_NOT_PENDING, None, None
        if t.debit_account_id and t.debit_account_id != p.debit_account_id:
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID, None, None
        if t.credit_account_id and t.credit_account_id != p.credit_account_id:
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID, None, None
        if t.kind and t.kind != p.kind:
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_KIND, None, None
        if post and t.amount > p.amount:
            return Result.EXCEEDS_PENDING_TRANSFER_AMOUNT, None, None
        if not post and t.amount not in (0, p.amount):
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT, None, None
        status = self._state.pending_status.get(p.id, PendingStatus.PENDING)
        if status is PendingStatus.POSTED:
            return Result.PENDING_TRANSFER_ALREADY_POSTED, None, None
        if status is PendingStatus.VOIDED:
            return Result.PENDING_TRANSFER_ALREADY_VOIDED, None, None
        timestamp = self.next_timestamp()
        if status is PendingStatus.EXPIRED or (found.expires_ns and found.expires_ns <= timestamp):
            return Result.PENDING_TRANSFER_EXPIRED, None, None
        # A11: post 0 means the whole pending amount; the rest of a partial post returns.
        amount = (t.amount or p.amount) if post else p.amount
        debit = self._state.accounts[p.debit_account_id]
        credit = self._state.accounts[p.credit_account_id]
        if post:
            if debit.debits_posted + amount > AMOUNT_MAX:
                return Result.OVERFLOWS_DEBITS_POSTED, None, None
            if credit.credits_posted + amount > AMOUNT_MAX:
                return Result.OVERFLOWS_CREDITS_POSTED, None, None
        if undo is not None:
            undo.append(_balance_restorer(debit))
            undo.append(_balance_restorer(credit))
        debit.debits_pending -= p.amount
        credit.credits_pending -= p.amount
        if post:
            debit.debits_posted += amount
            credit.credits_posted += amount
        resolved = Transfer(
            id=t.id,
            debit_account_id=p.debit_account_id,
            credit_account_id=p.credit_account_id,
            amount=amount,
            pending_id=p.id,
            user_data=t.user_data,
            kind=p.kind,
            code=t.code or (Code.SETTLE if post else Code.RELEASE),
            flags=t.flags,
            timestamp_ns=timestamp,
        )
        stored = StoredTransfer(resolved, Result.OK, released=p.amount)
        self._store(stored, undo)
        self._set_pending(p.id, PendingStatus.POSTED if post else PendingStatus.VOIDED, undo)
        return Result.OK, stored, None

    # -- expiry ------------------------------------------------------------------------------

    def expire(self, pending_ids: Sequence[int]) -> list[Outcome]:
        """A12: release pending transfers whose timeout has passed, as EXPIRE void transfers.

        Ids are derived from the pending id, so expiring twice is harmless (the second is
        EXISTS). Pending transfers already resolved are skipped.
        """
        outcomes: list[Outcome] = []
        for index, pending_id in enumerate(pending_ids):
            status = self._state.pending_status.get(pending_id)
            found = self._state.transfers.get(pending_id)
            if status is not PendingStatus.PENDING or found is None:
                continue
            assert found.expires_ns, "only pending transfers with a timeout expire"
            result, stored = self._expire_one(found)
            outcomes.append(Outcome(index, result, stored=stored))
        return outcomes

    def _expire_one(self, found: StoredTransfer) -> tuple[Result, StoredTransfer]:
        p = found.transfer
        debit = self._state.accounts[p.debit_account_id]
        credit = self._state.accounts[p.credit_account_id]
        debit.debits_pending -= p.amount
        credit.credits_pending -= p.amount
        expired = Transfer(
            id=expiry_id(p.id),
            debit_account_id=p.debit_account_id,
            credit_account_id=p.credit_account_id,
            amount=p.amount,
            pending_id=p.id,
            kind=p.kind,
            code=Code.EXPIRE,
            flags=TransferFlag.VOID_PENDING,
            timestamp_ns=self.next_timestamp(),
        )
        stored = StoredTransfer(expired, Result.OK, released=p.amount)
        self._store(stored, None)
        self._set_pending(p.id, PendingStatus.EXPIRED, None)
        return Result.OK, stored

    # -- bookkeeping -------------------------------------------------------------------------

    def _store(self, stored: StoredTransfer, undo: list[_Undo] | None) -> None:
        state = self._state
        transfer = stored.transfer
        state.transfers[transfer.id] = stored
        state.created.append(stored)
        state.touched_accounts.add(transfer.debit_account_id)
        state.touched_accounts.add(transfer.credit_account_id)
        if undo is not None:

            def forget() -> None:
                del state.transfers[transfer.id]

            undo.append(forget)

    def _set_pending(
        self, pending_id: int, status: PendingStatus, undo: list[_Undo] | None
    ) -> None:
        state = self._state
        if undo is not None:
            had_status = pending_id in state.pending_status
            old_status = state.pending_status.get(pending_id)
            had_change = pending_id in state.pending_changes
            old_change = state.pending_changes.get(pending_id)

            def restore() -> None:
                if had_status:
                    assert old_status is not None
                    state.pending_status[pending_id] = old_status
                else:
                    state.pending_status.pop(pending_id, None)
                if had_change:
                    assert old_change is not None
                    state.pending_changes[pending_id] = old_change
                else:
                    state.pending_changes.pop(pending_id, None)

            undo.append(restore)
        state.pending_status[pending_id] = status
        state.pending_changes[pending_id] = status


# The records of the per-transfer path are built by setting their slots directly. A frozen
# dataclass's generated __init__ sets each field through object.__setattr__ (~0.1 us a field:
# three records and 19 fields per transfer); the slots' own setters take a third of that. Every
# field is set, in the order the import-time check below pins to the classes' fields.
_new = object.__new__
_TRANSFER_FIELDS = (
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
)
_STORED_FIELDS = ("transfer", "result", "released", "entry_index")
_OUTCOME_FIELDS = ("index", "result", "original_result", "stored")
for _cls, _names in (
    (Transfer, _TRANSFER_FIELDS),
    (StoredTransfer, _STORED_FIELDS),
    (Outcome, _OUTCOME_FIELDS),
):
    assert tuple(f.name for f in fields(_cls)) == _names, _cls
(
    _set_id,
    _set_debit,
    _set_credit,
    _set_amount,
    _set_pending_id,
    _set_user_data,
    _set_kind,
    _set_code,
    _set_flags,
    _set_timeout,
    _set_timestamp,
) = (vars(Transfer)[name].__set__ for name in _TRANSFER_FIELDS)
_set_transfer, _set_result, _set_released, _set_entry_index = (
    vars(StoredTransfer)[name].__set__ for name in _STORED_FIELDS
)
_set_index, _set_outcome_result, _set_original, _set_stored = (
    vars(Outcome)[name].__set__ for name in _OUTCOME_FIELDS
)


def _stamped(t: Transfer, timestamp_ns: int) -> Transfer:
    """`t` with its ledger timestamp: Transfer(t.id, ..., timestamp_ns), built by its slots."""
    stamped = _new(Transfer)
    _set_id(stamped, t.id)
    _set_debit(stamped, t.debit_account_id)
    _set_credit(stamped, t.credit_account_id)
    _set_amount(stamped, t.amount)
    _set_pending_id(stamped, t.pending_id)
    _set_user_data(stamped, t.user_data)
    _set_kind(stamped, t.kind)
    _set_code(stamped, t.code)
    _set_flags(stamped, t.flags)
    _set_timeout(stamped, t.timeout_seconds)
    _set_timestamp(stamped, timestamp_ns)
    return stamped


def _stored(transfer: Transfer, result: Result, released: int) -> StoredTransfer:
    """StoredTransfer(transfer, result, released) (entry_index: -1), built by its slots."""
    stored = _new(StoredTransfer)
    _set_transfer(stored, transfer)
    _set_result(stored, result)
    _set_released(stored, released)
    _set_entry_index(stored, -1)
    return stored


def _outcome(
    index: int, result: Result, original: Result | None, stored: StoredTransfer | None
) -> Outcome:
    """Outcome(index, result, original, stored), built by its slots."""
    outcome = _new(Outcome)
    _set_index(outcome, index)
    _set_outcome_result(outcome, result)
    _set_original(outcome, original)
    _set_stored(outcome, stored)
    return outcome


def expiry_id(pending_id: int) -> int:
    """A12: the id of the EXPIRE transfer of a pending transfer, derived so expiry is idempotent."""
    digest = hashlib.sha256(b"orbitq/expire\x00" + pending_id.to_bytes(16, "big")).digest()
    value = int.from_bytes(digest[:16], "big")
    return value if value not in (0, ID_MAX) else 1


def _balance_restorer(account: Account) -> _Undo:
    saved = account.balances()

    def restore() -> None:
        (
            account.debits_pending,
            account.debits_posted,
            account.credits_pending,
            account.credits_posted,
        ) = saved

    return restore


def _check_fields(t: Transfer, pending: bool) -> Result | None:
    """A10: field checks of a single-phase or pending transfer, in order of precedence."""
    if t.debit_account_id == 0:
        return Result.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
    if t.debit_account_id >= ACCOUNT_ID_MAX:
        return Result.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
    if t.credit_account_id == 0:
        return Result.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
    if t.credit_account_id >= ACCOUNT_ID_MAX:
        return Result.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
    if t.debit_account_id == t.credit_account_id:
        return Result.ACCOUNTS_MUST_BE_DIFFERENT
    if t.pending_id != 0:
        return Result.PENDING_ID_MUST_BE_ZERO
    if not pending and t.timeout_seconds != 0:
        return Result.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
    if t.amount == 0:
        return Result.AMOUNT_MUST_NOT_BE_ZERO
    if t.amount > AMOUNT_MAX:
        return Result.AMOUNT_EXCEEDS_MAXIMUM
    if t.kind == 0:
        return Result.KIND_MUST_NOT_BE_ZERO
    if t.code == 0:
        return Result.CODE_MUST_NOT_BE_ZERO
    return None


def _check_resolution_fields(t: Transfer) -> Result | None:
    """A11: field checks of a post or void, in order of precedence."""
    if t.debit_account_id >= ACCOUNT_ID_MAX:
        return Result.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
    if t.credit_account_id >= ACCOUNT_ID_MAX:
        return Result.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
    if t.pending_id == 0:
        return Result.PENDING_ID_MUST_NOT_BE_ZERO
    if t.pending_id == ID_MAX:
        return Result.PENDING_ID_MUST_NOT_BE_INT_MAX
    if t.pending_id == t.id:
        return Result.PENDING_ID_MUST_BE_DIFFERENT
    if t.timeout_seconds != 0:
        return Result.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
    if t.amount > AMOUNT_MAX:
        return Result.AMOUNT_EXCEEDS_MAXIMUM
    return None


def _compare_existing(existing: StoredTransfer, t: Transfer) -> Result:
    """A7: a retry with the same id must carry the same fields; fields the ledger filled in for
    a post or void (accounts, kind, code, the amount of a full post) match when left zero."""
    e = existing.transfer
    resolution = bool(e.flags & _RESOLVES)
    if e.flags != t.flags:
        return Result.EXISTS_WITH_DIFFERENT_FLAGS
    if e.pending_id != t.pending_id:
        return Result.EXISTS_WITH_DIFFERENT_PENDING_ID
    if e.timeout_seconds != t.timeout_seconds:
        return Result.EXISTS_WITH_DIFFERENT_TIMEOUT
    if e.debit_account_id != t.debit_account_id and not (resolution and t.debit_account_id == 0):
        return Result.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
    if e.credit_account_id != t.credit_account_id and not (resolution and t.credit_account_id == 0):
        return Result.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
    if e.amount != t.amount and not (resolution and t.amount == 0):
        return Result.EXISTS_WITH_DIFFERENT_AMOUNT
    if e.user_data != t.user_data:
        return Result.EXISTS_WITH_DIFFERENT_USER_DATA
    if e.kind != t.kind and not (resolution and t.kind == 0):
        return Result.EXISTS_WITH_DIFFERENT_KIND
    if e.code != t.code and not (resolution and t.code == 0):
        return Result.EXISTS_WITH_DIFFERENT_CODE
    return Result.EXISTS
