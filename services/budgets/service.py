"""Budgets over a period: grant, list, and the job that opens and closes periods.

Owns: the `budgets` and `budget_periods` rows, who may grant and read them, and `run(now)`,
which every broker runs on an interval (APScheduler) and at start:

| method | operator | tenant key | node key |
| --- | --- | --- | --- |
| `grant` | yes | no | no |
| `list_budgets` | every tenant's, or one's | its own tenant's | no |

The job:

- a period whose end has passed is **closed**: its unspent, not rolled-over tokens go back
  tenant -> treasury as one transfer of code `lapse` (orbitq.services.budgets.periods.close
  says how much; tokens in escrow are never touched);
- the period containing `now` is **opened**: `amount` tokens treasury -> tenant, code `grant`.

Transfer ids derive from the budget id, the period's start and the step
(`SHA-256("orbitq/budget" || 0x00 || budget id || start_ns || step || attempt)[:16]`), so a
restart, a second run or a second replica finds the ledger answering `exists` and never grants
or lapses twice. Only a recorded failure (the account's available balance fell between reading
it and the lapse: `exceeds_credits`) moves to the next attempt's id, and only after the previous
attempt is known to have failed, so at most one attempt of a step ever succeeds.

Catching up after downtime is bounded: one run does at most two steps per budget (close the
open period, open the current one); periods that passed entirely while the broker was down are
skipped — they grant nothing, so nothing lapses for them either — and what rolled over from the
last closed period carries into the one opened.

Kept apart from fair share: grants and lapses are tenant <-> treasury transfers; the scheduler's
fair share counts consumption (settled requests), which neither touches.

Does not own: period arithmetic (periods.py), ledger rules, or when the job runs (the broker).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from orbitq.ledger.model import (
    AMOUNT_MAX,
    ID_MAX,
    Code,
    Kind,
    Outcome,
    Result,
    SystemAccount,
    Transfer,
    TransferFlag,
)
from orbitq.ledger.store import AttachedRows, AttachedWriteError, CreateTransfers, LedgerStore
from orbitq.ledger.store.writer import GroupCommitWriter
from orbitq.services.auth import Principal
from orbitq.services.budgets.periods import (
    ROLLOVER_PERCENT_MAX,
    Closing,
    Period,
    close,
    next_start,
    period_start,
)
from orbitq.services.clock import from_ns, to_ns
from orbitq.services.db import models  # noqa: F401  (registers the tables)
from orbitq.services.db.engine import write_transaction
from orbitq.services.errors import AlreadyExistsError, InvalidArgumentError
from orbitq.services.quota import Quota, check_amounts
from orbitq.services.tenants import Tenants

log = logging.getLogger(__name__)

BUDGETS: sa.Table = SQLModel.metadata.tables["budgets"]
PERIODS: sa.Table = SQLModel.metadata.tables["budget_periods"]

# A list answers at most this many budgets (one per tenant and kind).
BUDGETS_LIST_MAX = 1000
# One run looks at this many budgets at most; the next run continues after the last one it
# looked at (runs rotate through the due budgets, so budgets that stay due — a gap after
# --replace, a refused grant — cannot keep the ones after them waiting).
BUDGETS_PER_RUN_MAX = 10_000
# Attempts of one lapse whose earlier attempts failed (exceeds_credits after a race).
LAPSE_ATTEMPTS_MAX = 8


class Step:
    GRANT = 1
    LAPSE = 2


def transfer_id(budget_id: str, start_ns: int, step: int, attempt: int = 0) -> int:
    """The id of a budget's grant or lapse of the period starting at `start_ns` (idempotent)."""
    digest = hashlib.sha256(
        b"orbitq/budget\x00"
        + bytes.fromhex(budget_id)
        + start_ns.to_bytes(8, "big")
        + bytes([step, attempt])
    ).digest()
    value = int.from_bytes(digest[:16], "big")
    return value if value not in (0, ID_MAX) else 1


@dataclass(frozen=True, slots=True)
class BudgetView:
    """A budget with its current period (zeros when none is open)."""

    id: str
    tenant: str
    kind: Kind
    amount: int
    period: Period
    rollover_percent: int
    created_ns: int
    period_start_ns: int = 0
    period_end_ns: int = 0
    granted: int = 0
    carried_in: int = 0
    unspent: int = 0
    lapses: int = 0
    rolls_over: int = 0


@dataclass
class BudgetRunReport:
    granted: int = 0
    lapsed: int = 0
    skipped_periods: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class _Open:
    start_ns: int
    end_ns: int
    granted: int
    carried_in: int
    rollover_percent: int
    closed: bool
    carried_out: int

    def closing(self, spent: int, available: int) -> Closing:
        """What becomes of this period's budget tokens (periods.close) given its spending and
        the account's available balance."""
        return close(self.granted, self.carried_in, spent, available, self.rollover_percent)


class Budgets:
    def __init__(
        self,
        engine: sa.Engine,
        store: LedgerStore,
        writer: GroupCommitWriter,
        quota: Quota,
        tenants: Tenants,
        now: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._store = store
        self._writer = writer
        self._quota = quota
        self._tenants = tenants
        self._now = now
        # Where the last run stopped (tenant, kind), for the next run to continue after it.
        self._rotation: tuple[str, int] | None = None

    # -- the API -------------------------------------------------------------------------------

    def grant(
        self,
        principal: Principal,
        tenant: str,
        amounts: Mapping[Kind, int],
        period: int,
        rollover_percent: int,
        replace: bool = False,
    ) -> list[BudgetView]:
        """Create one budget per kind of `amounts` (operator). The same terms again return the
        existing budgets; other terms for a kind that has a budget are ALREADY_EXISTS, unless
        `replace`: then they apply from the next period (the current one closes as granted)."""
        principal.require_operator("granting budgets")
        if not tenant:
            raise InvalidArgumentError("tenant is required")
        if period not in {p.value for p in Period}:
            raise InvalidArgumentError(
                f"period {period} is not one of day (1), week (2), month (3)"
                if period
                else "period is required: day, week or month"
            )
        if not 0 <= rollover_percent <= ROLLOVER_PERCENT_MAX:
            raise InvalidArgumentError(
                f"rollover_percent {rollover_percent} is outside 0-{ROLLOVER_PERCENT_MAX}"
            )
        chosen = check_amounts(amounts)
        self._tenants.require(tenant)
        self._quota.account_ids(tenant)  # the accounts exist before any grant
        try:
            self._insert(tenant, chosen, period, rollover_percent, replace)
        except sa.exc.IntegrityError:
            # Another grant for the same tenant and kind committed between our read and our
            # insert (PostgreSQL; SQLite serialises writers): check the terms against it.
            self._insert(tenant, chosen, period, rollover_percent, replace)
        # The first period opens now, not at the next interval of the job.
        self.run(self._now(), tenant=tenant)
        return [view for view in self._views(tenant) if view.kind in chosen]

    def _insert(
        self,
        tenant: str,
        chosen: Mapping[Kind, int],
        period: int,
        rollover_percent: int,
        replace: bool,
    ) -> None:
        now_ns = to_ns(self._now())
        with write_transaction(self._engine) as connection:
            existing = {
                Kind(row.kind): row
                for row in connection.execute(
                    sa.select(BUDGETS).where(BUDGETS.c.tenant == tenant)
                ).all()
            }
            for kind, amount in chosen.items():
                row = existing.get(kind)
                if row is None:
                    continue
                terms = (amount, period, rollover_percent)
                if (row.amount, row.period, row.rollover_percent) == terms:
                    continue
                if not replace:
                    raise AlreadyExistsError(
                        f"{tenant} already has a {kind.label} budget of {row.amount:,} per"
                        f" {Period(row.period).label} (rollover {row.rollover_percent} %);"
                        " replace its terms (from the next period) with replace / --replace"
                    )
                connection.execute(
                    sa.update(BUDGETS)
                    .where(BUDGETS.c.id == row.id)
                    .values(amount=amount, period=period, rollover_percent=rollover_percent)
                )
            for kind, amount in sorted(chosen.items()):
                if kind in existing:
                    continue
                connection.execute(
                    sa.insert(BUDGETS).values(
                        id=secrets.token_hex(16),
                        tenant=tenant,
                        kind=int(kind),
                        amount=amount,
                        period=period,
                        rollover_percent=rollover_percent,
                        created_ns=now_ns,
                    )
                )

    def list_budgets(self, principal: Principal, tenant: str) -> list[BudgetView]:
        if tenant or not principal.is_operator:
            tenant = principal.tenant_scope(tenant, "read the budgets of")
            self._tenants.require(tenant)
        return self._views(tenant or None)

    # -- the job -------------------------------------------------------------------------------

    def run(self, now: datetime, *, tenant: str | None = None) -> BudgetRunReport:
        """Close every period that ended by `now` and open the period containing `now`."""
        report = BudgetRunReport()
        for row in self._due_rotating(to_ns(now), tenant, BUDGETS_PER_RUN_MAX):
            try:
                self._advance(row, now, report)
            except Exception:
                # One budget's failure (e.g. the writer halted) must not stop the others.
                log.exception("budget %s of %s: this run could not advance it", row.id, row.tenant)
                report.failed += 1
        return report

    def _advance(self, row: Any, now: datetime, report: BudgetRunReport) -> None:
        period = Period(row.period)
        now_ns = to_ns(now)
        current = self._latest(row.id)
        if current is not None and not current.closed:
            if current.end_ns > now_ns:
                return
            current = self._close(row, current, report)
            if current is None:
                return
        first = period_start(from_ns(row.created_ns), period)
        start = period_start(now, period)
        if current is not None:
            start = max(start, _first_start_from(from_ns(current.end_ns), period))
            report.skipped_periods += _periods_between(from_ns(current.end_ns), start, period)
        else:
            start = max(start, first)
        start_ns = to_ns(start)
        if start_ns > now_ns:
            return
        end_ns = to_ns(next_start(start, period))
        carried_in = current.carried_out if current is not None else 0
        self._open(row, start_ns, end_ns, carried_in, report)

    def _open(
        self, row: Any, start_ns: int, end_ns: int, carried_in: int, report: BudgetRunReport
    ) -> None:
        kind = Kind(row.kind)
        treasury = self._quota.system_account_ids()[(SystemAccount.TREASURY, kind)]
        transfer = Transfer(
            id=transfer_id(row.id, start_ns, Step.GRANT),
            debit_account_id=treasury,
            credit_account_id=self._quota.account_ids(row.tenant)[kind],
            amount=row.amount,
            user_data=bytes.fromhex(row.id) + start_ns.to_bytes(8, "big"),
            kind=int(kind),
            code=int(Code.GRANT),
        )
        period_row = {
            "budget_id": row.id,
            "start_ns": start_ns,
            "end_ns": end_ns,
            "granted": row.amount,
            "carried_in": carried_in,
            "rollover_percent": row.rollover_percent,
            "closed": False,
            "lapsed": 0,
            "carried_out": 0,
        }
        # A new grant and its period's row commit together (one ledger item, the row attached):
        # a crash between them would leave granted tokens no period closes, which never lapse.
        try:
            outcome = self._apply(transfer, AttachedRows(((PERIODS, (period_row,)),)))
        except AttachedWriteError as error:
            log.error(
                "budget %s: the period at %s was not opened: %s",
                row.id,
                from_ns(start_ns).isoformat(),
                error,
            )
            report.failed += 1
            return
        if outcome.result is Result.OK:
            report.granted += 1
            return
        granted = outcome.stored.transfer.amount if outcome.stored is not None else 0
        if outcome.result.name.startswith("EXISTS_WITH_DIFFERENT"):
            # Granted already, on other terms (then a change of terms): the ledger's grant is
            # the period's.
            stored = self._store.transfer(transfer.id)
            if stored is not None and stored.result is Result.OK:
                outcome = replace(outcome, result=Result.EXISTS, stored=stored)
                granted = stored.transfer.amount
        if outcome.result is not Result.EXISTS:
            log.error(
                "budget %s: the grant of the period at %s was refused (%s)",
                row.id,
                from_ns(start_ns).isoformat(),
                outcome.result.label,
            )
            report.failed += 1
            return
        # Granted by an earlier run or another replica, with its row (or by a broker from
        # before grants carried their rows): the row, if missing, from the ledger's facts.
        _insert_ignoring_duplicate(self._engine, PERIODS, {**period_row, "granted": granted})

    def _close(self, row: Any, current: _Open, report: BudgetRunReport) -> _Open | None:
        kind = Kind(row.kind)
        account_id = self._quota.account_ids(row.tenant)[kind]
        treasury = self._quota.system_account_ids()[(SystemAccount.TREASURY, kind)]
        spent = self.spent(account_id, current.start_ns, current.end_ns)
        # What rolls over follows from the period's spending alone, which is fixed once the
        # period has ended (later transfers get later ledger timestamps), so every run and
        # every replica computes the same; only the lapse also depends on the balance now.
        carried = current.closing(spent, AMOUNT_MAX).carried
        lapsed: int | None = None
        attempt = 0
        reads = 0
        while lapsed is None and attempt < LAPSE_ATTEMPTS_MAX and reads < 2 * LAPSE_ATTEMPTS_MAX:
            reads += 1
            lapse_id = transfer_id(row.id, current.start_ns, Step.LAPSE, attempt)
            stored = self._store.transfer(lapse_id)
            if stored is not None:
                if stored.result is Result.OK:
                    lapsed = stored.transfer.amount
                else:
                    attempt += 1  # a recorded failure: this attempt's id is used up
                continue
            (account,) = [a for a in self._store.accounts_of(row.tenant) if a.kind is kind]
            closing = current.closing(spent, account.available)
            if closing.lapsed == 0:
                lapsed = 0
                continue
            transfer = Transfer(
                id=lapse_id,
                debit_account_id=account_id,
                credit_account_id=treasury,
                amount=closing.lapsed,
                user_data=bytes.fromhex(row.id) + current.start_ns.to_bytes(8, "big"),
                kind=int(kind),
                code=int(Code.LAPSE),
            )
            outcome = self._apply(transfer)
            if outcome.result is Result.OK:
                report.lapsed += 1
            if outcome.stored is not None and outcome.result in (Result.OK, Result.EXISTS):
                lapsed = outcome.stored.transfer.amount
            # Otherwise: a recorded failure (the next read moves to the next attempt) or
            # another replica's lapse with another amount (the next read returns it).
        if lapsed is None:
            log.error("budget %s: the lapse of %s failed %d times", row.id, current, attempt + 1)
            report.failed += 1
            return None
        with write_transaction(self._engine) as connection:
            connection.execute(
                sa.update(PERIODS)
                .where(
                    PERIODS.c.budget_id == row.id,
                    PERIODS.c.start_ns == current.start_ns,
                    PERIODS.c.closed.is_(False),
                )
                .values(closed=True, lapsed=lapsed, carried_out=carried)
            )
        return self._latest(row.id)

    def _apply(self, transfer: Transfer, attached: AttachedRows | None = None) -> Outcome:
        (outcome,) = self._writer.apply(CreateTransfers((transfer,), attached=attached))
        assert isinstance(outcome, Outcome)
        return outcome

    def spent(self, account_id: int, since_ns: int, until_ns: int) -> int:
        """What the period took from the account, net: the change of its debits (pending and
        posted) during [since, until), a lapse aside. A reservation counts when it is made
        (the tokens left the tenant's hands then), its settlement only for what it releases
        (negative), a void or an expiry for all it releases: tokens that come back count in
        the period they return, so a reservation across a period's end neither hides budget
        tokens from the lapse nor makes minted ones lapse in its place. May be negative."""
        pending, post, void = (
            int(TransferFlag.PENDING),
            int(TransferFlag.POST_PENDING),
            int(TransferFlag.VOID_PENDING),
        )
        # The same effect per transfer as the ledger's replay (orbitq.ledger.invariants
        # effect_of): pending +amount; post +amount - released; void -released; else +amount.
        query = sa.text(
            "SELECT COALESCE(SUM(CASE"
            " WHEN (flags & :pending) <> 0 THEN amount"
            " WHEN (flags & :post) <> 0 THEN amount - released"
            " WHEN (flags & :void) <> 0 THEN -released"
            " ELSE amount END), 0) FROM ledger_transfers"
            " WHERE debit_account_id = :account AND result = :ok"
            " AND timestamp_ns >= :since AND timestamp_ns < :until AND code <> :lapse"
        )
        with self._engine.connect() as connection:
            value = connection.execute(
                query,
                {
                    "account": account_id,
                    "ok": int(Result.OK),
                    "since": since_ns,
                    "until": until_ns,
                    "pending": pending,
                    "post": post,
                    "void": void,
                    "lapse": int(Code.LAPSE),
                },
            ).scalar_one()
        return int(value)

    # -- reads ---------------------------------------------------------------------------------

    def _budgets(self, tenant: str | None, limit: int) -> list[Any]:
        query = sa.select(BUDGETS).order_by(BUDGETS.c.tenant, BUDGETS.c.kind).limit(limit)
        if tenant is not None:
            query = query.where(BUDGETS.c.tenant == tenant)
        with self._engine.connect() as connection:
            return list(connection.execute(query).all())

    def _due_rotating(self, now_ns: int, tenant: str | None, limit: int) -> list[Any]:
        """Up to `limit` due budgets, starting after where the last run stopped and wrapping
        around to the first."""
        after = self._rotation if tenant is None else None
        rows = self._due(now_ns, tenant, limit, after)
        if after is not None and len(rows) < limit:
            taken = {row.id for row in rows}
            rows += [
                row
                for row in self._due(now_ns, tenant, limit - len(rows), None)
                if row.id not in taken
            ]
        if tenant is None:
            self._rotation = (rows[-1].tenant, rows[-1].kind) if len(rows) >= limit else None
        return rows

    def _due(
        self, now_ns: int, tenant: str | None, limit: int, after: tuple[str, int] | None
    ) -> list[Any]:
        """Budgets with no open period still running at `now_ns` (after `after` in (tenant,
        kind) order): between boundaries the job reads one indexed query and nothing else."""
        running = (
            sa.select(PERIODS.c.budget_id)
            .where(PERIODS.c.budget_id == BUDGETS.c.id)
            .where(PERIODS.c.closed.is_(False))
            .where(PERIODS.c.end_ns > now_ns)
        )
        query = (
            sa.select(BUDGETS)
            .where(~running.exists())
            .order_by(BUDGETS.c.tenant, BUDGETS.c.kind)
            .limit(limit)
        )
        if tenant is not None:
            query = query.where(BUDGETS.c.tenant == tenant)
        if after is not None:
            query = query.where(
                sa.or_(
                    BUDGETS.c.tenant > after[0],
                    sa.and_(BUDGETS.c.tenant == after[0], BUDGETS.c.kind > after[1]),
                )
            )
        with self._engine.connect() as connection:
            return list(connection.execute(query).all())

    def _latest(self, budget_id: str) -> _Open | None:
        with self._engine.connect() as connection:
            found = connection.execute(
                sa.select(PERIODS)
                .where(PERIODS.c.budget_id == budget_id)
                .order_by(PERIODS.c.start_ns.desc())
                .limit(1)
            ).first()
        if found is None:
            return None
        return _Open(
            found.start_ns,
            found.end_ns,
            found.granted,
            found.carried_in,
            found.rollover_percent,
            bool(found.closed),
            found.carried_out,
        )

    def _views(self, tenant: str | None) -> list[BudgetView]:
        views = []
        for row in self._budgets(tenant, BUDGETS_LIST_MAX):
            view = BudgetView(
                id=row.id,
                tenant=row.tenant,
                kind=Kind(row.kind),
                amount=row.amount,
                period=Period(row.period),
                rollover_percent=row.rollover_percent,
                created_ns=row.created_ns,
            )
            current = self._latest(row.id)
            if current is not None and not current.closed:
                account_id = self._quota.account_ids(row.tenant)[view.kind]
                (account,) = [a for a in self._store.accounts_of(row.tenant) if a.kind is view.kind]
                spent = self.spent(account_id, current.start_ns, AMOUNT_MAX)
                closing = current.closing(spent, account.available)
                view = BudgetView(
                    **{
                        **{f: getattr(view, f) for f in BudgetView.__slots__},
                        "period_start_ns": current.start_ns,
                        "period_end_ns": current.end_ns,
                        "granted": current.granted,
                        "carried_in": current.carried_in,
                        "unspent": closing.unspent,
                        "lapses": closing.lapsed,
                        "rolls_over": closing.carried,
                    }
                )
            views.append(view)
        return views


def _first_start_from(instant: datetime, period: Period) -> datetime:
    """The first start of a `period` at or after `instant` (the end of a period of another
    length, after a change of terms; otherwise `instant` itself)."""
    start = period_start(instant, period)
    return start if start == instant else next_start(start, period)


def _periods_between(end: datetime, start: datetime, period: Period) -> int:
    """How many whole periods lie in [end, start) (both period starts); bounded by the
    calendar (a broker down for years counts years of days, without granting any)."""
    if start <= end or period_start(end, period) != end:
        return 0
    days = (start - end).days
    if period is Period.DAY:
        return days
    if period is Period.WEEK:
        return days // 7
    return (start.year - end.year) * 12 + start.month - end.month


def _insert_ignoring_duplicate(engine: sa.Engine, table: sa.Table, values: dict[str, Any]) -> None:
    """Insert a row another run or replica may have inserted already (same key, same facts)."""
    keys = list(table.primary_key.columns)
    try:
        with write_transaction(engine) as connection:
            found = connection.execute(
                sa.select(*keys).where(*(column == values[column.name] for column in keys))
            ).first()
            if found is None:
                connection.execute(sa.insert(table).values(**values))
    except sa.exc.IntegrityError:
        pass  # inserted by another replica between our read and our write: the same facts
