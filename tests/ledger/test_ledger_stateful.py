"""Random mixes of ledger operations against the reference model, through the real store, on
SQLite and PostgreSQL: results and balances match after every step, and every invariant holds
(double entry, nothing overdrawn, balances = replay of the transfers)."""

from __future__ import annotations

import secrets
from dataclasses import replace

import hypothesis.strategies as st
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from orbitq.ledger.model import Code, Kind, Result, SystemAccount, Transfer, TransferFlag
from orbitq.ledger.store import AccountSpec, CreateTransfers, LedgerStore
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate
from tests.ledger.reference_model import Model
from tests.ledger.two_tenants import cpu_treasury

START_NS = 1_764_979_200_000_000_000
SECOND = 1_000_000_000
# Clock steps are whole seconds plus an odd millisecond-and-a-bit, so no instant ever lands
# within a millisecond of an expiry (timeouts are whole seconds).
STEP_EXTRA_NS = 1_000_003
MISSING_ACCOUNT = 987_654_321


def ledger_machine(store: LedgerStore) -> type[RuleBasedStateMachine]:
    class LedgerMachine(RuleBasedStateMachine):
        transfers = Bundle("transfers")
        pendings = Bundle("pendings")

        @initialize()
        def open_accounts(self) -> None:
            self.model = Model()
            # The database outlives examples: start a day after everything before, and release
            # what earlier examples left pending, so the model starts from a quiet ledger.
            self.now = max(START_NS, store.head().last_timestamp_ns) + 86_400 * SECOND
            store.expire_due(self.now)
            tag = secrets.token_hex(3)
            specs = [
                AccountSpec(kind, tenant=f"t{tag}-{i}")
                for i in range(3)
                for kind in (Kind.CPU, Kind.LINK)
            ]
            self.tenants: dict[int, list[int]] = {int(Kind.CPU): [], int(Kind.LINK): []}
            for account in store.create_accounts(specs, self.now):
                self.model.add_account(account.id, int(account.kind), limited=True)
                self.tenants[int(account.kind)].append(account.id)
            self.system: dict[tuple[int, int], int] = {}
            for account in store.system_accounts():
                assert account.system is not None
                self.system[(int(account.system), int(account.kind))] = account.id
                if account.id not in self.model.balances:
                    self.model.add_account(account.id, int(account.kind), limited=False)
            # System accounts are shared with earlier examples: track their movements from here.
            self.baseline = {a.id: list(a.balances()) for a in store.system_accounts()}
            for kind, ids in self.tenants.items():
                for index in range(len(ids)):
                    self.mint(kind, index, 1000)

        def submit(self, batch: list[Transfer]) -> list[Result]:
            got = [outcome.result for outcome in store.create_transfers(batch, self.now)]
            # A12: every write first releases the reservations whose timeout has passed.
            self.model.expire(self.now)
            expected = self.model.apply_batch(batch, self.now)
            assert got == expected, f"store {got} != model {expected} for {batch}"
            return got

        def account(self, kind: int, index: int) -> int:
            return self.tenants[kind][index % 3]

        @rule(
            target=transfers,
            kind=st.sampled_from([1, 3]),
            who=st.integers(0, 2),
            amount=st.integers(1, 500),
        )
        def mint(self, kind: int, who: int, amount: int) -> Transfer:
            t = Transfer(
                id=secrets.randbits(127) + 1,
                debit_account_id=self.system[(int(SystemAccount.TREASURY), kind)],
                credit_account_id=self.account(kind, who),
                amount=amount,
                kind=kind,
                code=int(Code.MINT),
            )
            self.submit([t])
            return t

        @rule(
            target=transfers,
            kind=st.sampled_from([1, 3]),
            source=st.integers(0, 2),
            dest=st.integers(0, 3),
            amount=st.integers(0, 400),
            missing=st.booleans(),
        )
        def transfer(
            self, kind: int, source: int, dest: int, amount: int, missing: bool
        ) -> Transfer:
            credit = MISSING_ACCOUNT if missing and dest == 3 else self.account(kind, dest)
            t = Transfer(
                id=secrets.randbits(127) + 1,
                debit_account_id=self.account(kind, source),
                credit_account_id=credit,
                amount=amount,
                kind=kind,
                code=int(Code.TRANSFER),
            )
            self.submit([t])
            return t

        @rule(
            target=pendings,
            kind=st.sampled_from([1, 3]),
            source=st.integers(0, 2),
            amount=st.integers(1, 300),
            timeout=st.sampled_from([0, 5, 60]),
        )
        def reserve(
            self, kind: int, source: int, amount: int, timeout: int
        ) -> MultipleResults[Transfer]:
            t = Transfer(
                id=secrets.randbits(127) + 1,
                debit_account_id=self.account(kind, source),
                credit_account_id=self.system[(int(SystemAccount.ESCROW), kind)],
                amount=amount,
                kind=kind,
                code=int(Code.RESERVE),
                flags=TransferFlag.PENDING,
                timeout_seconds=timeout,
            )
            # Only reservations that exist are worth posting or voiding later.
            (result,) = self.submit([t])
            return multiple(t) if result is Result.OK else multiple()

        @rule(target=transfers, pending=pendings, fraction=st.sampled_from([0, 1, 2, 3, 5]))
        def post(self, pending: Transfer, fraction: int) -> Transfer:
            amount = pending.amount * fraction // 4  # 0 = all; 5/4 = too much
            t = Transfer(
                id=secrets.randbits(127) + 1,
                pending_id=pending.id,
                amount=amount,
                code=int(Code.SETTLE),
                flags=TransferFlag.POST_PENDING,
            )
            self.submit([t])
            return t

        @rule(target=transfers, pending=pendings)
        def void(self, pending: Transfer) -> Transfer:
            t = Transfer(
                id=secrets.randbits(127) + 1,
                pending_id=pending.id,
                code=int(Code.RELEASE),
                flags=TransferFlag.VOID_PENDING,
            )
            self.submit([t])
            return t

        @rule(
            kind=st.sampled_from([1, 3]),
            amounts=st.lists(st.integers(1, 300), min_size=2, max_size=4),
            source=st.integers(0, 2),
        )
        def linked_chain(self, kind: int, amounts: list[int], source: int) -> None:
            chain = [
                Transfer(
                    id=secrets.randbits(127) + 1,
                    debit_account_id=self.account(kind, source),
                    credit_account_id=self.account(kind, source + 1 + i % 2),
                    amount=amount,
                    kind=kind,
                    code=int(Code.TRANSFER),
                    flags=TransferFlag.LINKED if i < len(amounts) - 1 else 0,
                )
                for i, amount in enumerate(amounts)
            ]
            self.submit(chain)

        @rule(old=transfers, change=st.booleans())
        def retry(self, old: Transfer, change: bool) -> None:
            self.submit([replace(old, amount=old.amount + 1) if change else old])

        @rule(old=consumes(pendings))
        def retry_pending(self, old: Transfer) -> None:
            self.submit([old])

        @rule(seconds=st.integers(1, 90), expire=st.booleans())
        def time_passes(self, seconds: int, expire: bool) -> None:
            self.now += seconds * SECOND + STEP_EXTRA_NS
            if expire:
                assert len(store.expire_due(self.now)) == self.model.expire(self.now)

        @invariant()
        def balances_match_the_model(self) -> None:
            if not hasattr(self, "model"):
                return
            for account in store.all_accounts():
                if account.id not in self.model.balances:
                    continue
                expected = list(self.model.balances[account.id])
                if account.id in self.baseline:
                    expected = [
                        a + b for a, b in zip(expected, self.baseline[account.id], strict=True)
                    ]
                assert list(account.balances()) == expected, f"account {account.id}"

        @invariant()
        def ledger_invariants_hold(self) -> None:
            store.check_invariants()

    return LedgerMachine


def test_ledger_matches_the_reference_model(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        migrate(engine)
        store = LedgerStore(engine)
        store.initialize(START_NS)
        run_state_machine_as_test(
            ledger_machine(store),
            settings=settings(
                max_examples=50,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
        assert store.head().size > 0
    finally:
        engine.dispose()


def test_a_duplicate_id_in_one_group_gets_exists(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        migrate(engine)
        store = LedgerStore(engine)
        store.initialize(START_NS)
        (account,) = store.create_accounts([AccountSpec(Kind.CPU, tenant="a")], START_NS)
        mint = Transfer(
            id=7,
            debit_account_id=cpu_treasury(store),
            credit_account_id=account.id,
            amount=5,
            kind=1,
            code=int(Code.MINT),
        )
        first, second = store.write([CreateTransfers((mint,)), CreateTransfers((mint,))], START_NS)
        assert [o.result for o in first] == [Result.OK]  # type: ignore[union-attr]
        assert [o.result for o in second] == [Result.EXISTS]  # type: ignore[union-attr]
        # Retried in a later group: the optimistic insert collides and the group is redone.
        third = store.create_transfers([mint], START_NS + SECOND)
        assert [o.result for o in third] == [Result.EXISTS]
        with engine.connect() as conn:
            count = conn.execute(sa.text("SELECT count(*) FROM ledger_transfers")).scalar_one()
        assert count == 1
        store.check_invariants()
    finally:
        engine.dispose()
