"""A deliberately small, independent model of the ledger's rules, for the stateful test.

It covers the transfers the test generates (mint, transfer, pending, post, void, expiry, linked
chains, retries, a few invalid ones) and nothing more. Written from docs/ledger-format.md, not
from orbitq.ledger.engine, so the two can disagree when one of them is wrong.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

from orbitq.ledger.model import Code, Result, Transfer, TransferFlag

RECORDED = {
    Result.DEBIT_ACCOUNT_NOT_FOUND,
    Result.CREDIT_ACCOUNT_NOT_FOUND,
    Result.PENDING_TRANSFER_NOT_FOUND,
    Result.EXCEEDS_CREDITS,
}
# Fields of a post or void that may be left 0 for the ledger to fill in.
FILLED = {"debit_account_id", "credit_account_id", "amount", "kind", "code"}
FIELDS = (
    ("flags", Result.EXISTS_WITH_DIFFERENT_FLAGS),
    ("pending_id", Result.EXISTS_WITH_DIFFERENT_PENDING_ID),
    ("timeout_seconds", Result.EXISTS_WITH_DIFFERENT_TIMEOUT),
    ("debit_account_id", Result.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID),
    ("credit_account_id", Result.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID),
    ("amount", Result.EXISTS_WITH_DIFFERENT_AMOUNT),
    ("user_data", Result.EXISTS_WITH_DIFFERENT_USER_DATA),
    ("kind", Result.EXISTS_WITH_DIFFERENT_KIND),
    ("code", Result.EXISTS_WITH_DIFFERENT_CODE),
)


@dataclass
class Recorded:
    # For a post or void: the transfer as the ledger completes it (accounts, kind, amount and
    # code filled in from the pending transfer), which is what a retry is compared with.
    request: Transfer
    result: Result
    debit: int = 0
    credit: int = 0
    amount: int = 0
    expires_ns: int = 0
    status: str = ""  # pending transfers: pending, posted, voided, expired


@dataclass
class Model:
    # account id -> [debits_pending, debits_posted, credits_pending, credits_posted]
    balances: dict[int, list[int]] = field(default_factory=dict)
    kinds: dict[int, int] = field(default_factory=dict)
    limited: set[int] = field(default_factory=set)
    records: dict[int, Recorded] = field(default_factory=dict)

    def add_account(self, account_id: int, kind: int, limited: bool) -> None:
        self.balances[account_id] = [0, 0, 0, 0]
        self.kinds[account_id] = kind
        if limited:
            self.limited.add(account_id)

    def available(self, account_id: int) -> int:
        dp, dpo, _, cpo = self.balances[account_id]
        return cpo - dpo - dp

    # -- one batch -------------------------------------------------------------------------------

    def apply_batch(self, batch: list[Transfer], now_ns: int) -> list[Result]:
        results: list[Result] = []
        start = 0
        while start < len(batch):
            end = start
            while end < len(batch) and batch[end].flags & TransferFlag.LINKED:
                end += 1
            if end == len(batch):  # an open chain
                results += [Result.LINKED_EVENT_FAILED] * (end - start - 1)
                results.append(Result.LINKED_EVENT_CHAIN_OPEN)
                return results
            results += self._apply_chain(batch[start : end + 1], now_ns)
            start = end + 1
        return results

    def _apply_chain(self, chain: list[Transfer], now_ns: int) -> list[Result]:
        saved = (copy.deepcopy(self.balances), copy.deepcopy(self.records))
        results: list[Result] = []
        for position, transfer in enumerate(chain):
            result = self._decide(transfer, now_ns)
            if result in (Result.OK, Result.EXISTS):
                results.append(result)
                continue
            if len(chain) > 1:  # all or nothing: undo the members that succeeded
                self.balances, self.records = saved
            if result in RECORDED:
                self.records[transfer.id] = Recorded(transfer, result)
            outcome = [Result.LINKED_EVENT_FAILED] * len(chain)
            outcome[position] = result
            return outcome
        return results

    def _decide(self, t: Transfer, now_ns: int) -> Result:
        existing = self.records.get(t.id)
        if existing is not None:
            if existing.result is not Result.OK:
                return Result.ID_ALREADY_FAILED
            resolution = bool(t.flags & (TransferFlag.POST_PENDING | TransferFlag.VOID_PENDING))
            for name, mismatch in FIELDS:
                stored, asked = getattr(existing.request, name), getattr(t, name)
                left_to_the_ledger = resolution and asked == 0 and name in FILLED
                if stored != asked and not left_to_the_ledger:
                    return mismatch
            return Result.EXISTS
        if t.flags & (TransferFlag.POST_PENDING | TransferFlag.VOID_PENDING):
            return self._resolve(t, now_ns)
        if t.debit_account_id == t.credit_account_id:
            return Result.ACCOUNTS_MUST_BE_DIFFERENT
        if t.amount == 0:
            return Result.AMOUNT_MUST_NOT_BE_ZERO
        if t.debit_account_id not in self.balances:
            return Result.DEBIT_ACCOUNT_NOT_FOUND
        if t.credit_account_id not in self.balances:
            return Result.CREDIT_ACCOUNT_NOT_FOUND
        if t.debit_account_id in self.limited and self.available(t.debit_account_id) < t.amount:
            return Result.EXCEEDS_CREDITS
        debit = self.balances[t.debit_account_id]
        credit = self.balances[t.credit_account_id]
        record = Recorded(t, Result.OK, t.debit_account_id, t.credit_account_id, t.amount)
        if t.flags & TransferFlag.PENDING:
            debit[0] += t.amount
            credit[2] += t.amount
            record.status = "pending"
            if t.timeout_seconds:
                # Timestamps are the clock's, give or take a few nanoseconds; tests never put
                # an instant within a millisecond of an expiry.
                record.expires_ns = now_ns + t.timeout_seconds * 1_000_000_000
        else:
            debit[1] += t.amount
            credit[3] += t.amount
        self.records[t.id] = record
        return Result.OK

    def _resolve(self, t: Transfer, now_ns: int) -> Result:
        pending = self.records.get(t.pending_id)
        if pending is None or pending.result is not Result.OK:
            return Result.PENDING_TRANSFER_NOT_FOUND
        if not pending.status:
            return Result.PENDING_TRANSFER_NOT_PENDING
        post = bool(t.flags & TransferFlag.POST_PENDING)
        if post and t.amount > pending.amount:
            return Result.EXCEEDS_PENDING_TRANSFER_AMOUNT
        if not post and t.amount not in (0, pending.amount):
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
        if pending.status == "posted":
            return Result.PENDING_TRANSFER_ALREADY_POSTED
        if pending.status == "voided":
            return Result.PENDING_TRANSFER_ALREADY_VOIDED
        if pending.status == "expired" or (pending.expires_ns and pending.expires_ns <= now_ns):
            return Result.PENDING_TRANSFER_EXPIRED
        debit = self.balances[pending.debit]
        credit = self.balances[pending.credit]
        debit[0] -= pending.amount
        credit[2] -= pending.amount
        if post:
            amount = t.amount or pending.amount
            debit[1] += amount
            credit[3] += amount
        pending.status = "posted" if post else "voided"
        completed = replace(
            t,
            debit_account_id=pending.debit,
            credit_account_id=pending.credit,
            amount=(t.amount or pending.amount) if post else pending.amount,
            kind=pending.request.kind,
            code=t.code or (Code.SETTLE if post else Code.RELEASE),
        )
        self.records[t.id] = Recorded(completed, Result.OK)
        return Result.OK

    def expire(self, now_ns: int) -> int:
        """Release every pending transfer due by `now_ns`; how many."""
        count = 0
        for record in self.records.values():
            if record.status == "pending" and record.expires_ns and record.expires_ns <= now_ns:
                self.balances[record.debit][0] -= record.amount
                self.balances[record.credit][2] -= record.amount
                record.status = "expired"
                count += 1
        return count
