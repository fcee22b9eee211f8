"""The store's reads in raw SQL equal the same question asked of every transfer in Python:
history with each filter and keyset pages, and balances at past instants (the replay of A12),
over more accounts than one IN (...) list holds. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count

import pytest

from orbitq.ledger.invariants import replay
from orbitq.ledger.model import Code, Kind, Result, StoredTransfer, SystemAccount, Transfer
from orbitq.ledger.model import TransferFlag as Flag
from orbitq.ledger.store import AccountSpec, LedgerStore
from orbitq.ledger.store.dialect import IN_LIST_VALUES_MAX
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate

START_NS = 1_764_979_200_000_000_000
# More accounts than one IN (...) list: transfers between the two ends cross chunks.
ACCOUNTS = IN_LIST_VALUES_MAX + 20


@pytest.fixture
def store(db_url: str) -> Iterator[LedgerStore]:
    engine = create_engine(db_url)
    migrate(engine)
    opened = LedgerStore(engine)
    opened.initialize(START_NS)
    try:
        yield opened
    finally:
        engine.dispose()


def _history(store: LedgerStore) -> tuple[list[int], list[int]]:
    """Tenant accounts, minted, paying each other across chunks, with a pending transfer
    posted in part: returns (account ids, the instants after each step)."""
    clock = count(START_NS + 1_000_000, 1_000_000)
    specs = [AccountSpec(Kind.CPU, tenant=f"t{i}") for i in range(ACCOUNTS)]
    specs.append(AccountSpec(Kind.LINK, tenant="t0"))
    accounts = [a.id for a in store.create_accounts(specs, next(clock))]
    cpu, link = accounts[:ACCOUNTS], accounts[ACCOUNTS]
    system = {(a.system, a.kind): a.id for a in store.system_accounts()}
    treasury = system[(SystemAccount.TREASURY, Kind.CPU)]
    ids = count(1)

    def move(debit: int, credit: int, amount: int, code: Code, flags: int = 0) -> Transfer:
        return Transfer(
            next(ids), debit, credit, amount, kind=int(Kind.CPU), code=int(code), flags=flags
        )

    steps = [
        [move(treasury, account, 100, Code.MINT) for account in cpu],
        [move(cpu[i], cpu[-1 - i], 7 + i, Code.TRANSFER) for i in range(20)],
        [
            move(
                cpu[1],
                system[(SystemAccount.ESCROW, Kind.CPU)],
                50,
                Code.RESERVE,
                flags=Flag.PENDING,
            )
        ],
    ]
    instants = []
    for batch in steps:
        assert all(o.ok for o in store.create_transfers(batch, next(clock)))
        instants.append(store.head().last_timestamp_ns)
    pending_id = steps[2][0].id
    post = Transfer(next(ids), pending_id=pending_id, amount=30, flags=Flag.POST_PENDING)
    link_mint = Transfer(
        next(ids),
        system[(SystemAccount.TREASURY, Kind.LINK)],
        link,
        5,
        kind=int(Kind.LINK),
        code=int(Code.MINT),
    )
    overdraft = move(cpu[2], cpu[3], 10**9, Code.TRANSFER)  # recorded failure: not history
    outcomes = store.create_transfers([post, link_mint, overdraft], next(clock))
    assert [o.result for o in outcomes] == [Result.OK, Result.OK, Result.EXCEEDS_CREDITS]
    instants.append(store.head().last_timestamp_ns)
    return [*cpu, link], instants


def test_balances_at_each_instant_equal_the_replay_up_to_it(store: LedgerStore) -> None:
    accounts, instants = _history(store)
    everything = list(store.all_transfers())
    for at in (START_NS, *instants, instants[0] + 1):
        expected = replay(s for s in everything if s.transfer.timestamp_ns <= at)
        got = store.balances_at(accounts, at)
        assert got == {a: tuple(expected.get(a, [0, 0, 0, 0])) for a in accounts}
    now = store.balances_at(accounts, instants[-1])
    assert now == {a.id: a.balances() for a in store.all_accounts() if a.id in now}


def _expected(
    everything: list[StoredTransfer],
    *,
    account_ids: list[int] | None = None,
    kind: int | None = None,
    code: int | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    oldest_first: bool = False,
) -> list[StoredTransfer]:
    found = []
    for stored in everything:
        t = stored.transfer
        if stored.result is not Result.OK:
            continue
        if account_ids is not None and not {t.debit_account_id, t.credit_account_id} & set(
            account_ids
        ):
            continue
        if (kind and t.kind != kind) or (code and t.code != code):
            continue
        if (since_ns and t.timestamp_ns < since_ns) or (until_ns and t.timestamp_ns >= until_ns):
            continue
        found.append(stored)
    found.sort(key=lambda s: s.transfer.timestamp_ns, reverse=not oldest_first)
    return found


def test_history_filters_and_pages_equal_the_same_filter_in_python(store: LedgerStore) -> None:
    accounts, instants = _history(store)
    everything = list(store.all_transfers())
    filters: list[dict[str, object]] = [
        {},
        {"account_ids": [accounts[0]]},
        {"account_ids": [accounts[1], accounts[-2], accounts[-1]]},
        {"account_ids": []},
        {"kind": int(Kind.LINK)},
        {"code": int(Code.MINT)},
        {"code": int(Code.SETTLE), "kind": int(Kind.CPU)},
        {"since_ns": instants[0] + 1},
        {"until_ns": instants[1] + 1, "since_ns": instants[0] + 1},
        {"oldest_first": True, "code": int(Code.TRANSFER)},
    ]
    for query in filters:
        expected = _expected(everything, **query)  # type: ignore[arg-type]
        pages: list[StoredTransfer] = []
        before: int | None = None
        for _ in range(len(expected) // 7 + 2):
            page = store.list_transfers(limit=7, before_ns=before, **query)  # type: ignore[arg-type]
            if not page:
                break
            pages.extend(page)
            before = page[-1].transfer.timestamp_ns
        assert pages == expected, query
    with pytest.raises(ValueError, match="account ids"):
        store.list_transfers(account_ids=list(range(1, IN_LIST_VALUES_MAX + 2)))
