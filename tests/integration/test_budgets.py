"""Budgets over a period through the real server and SDK, on SQLite and PostgreSQL, with the
simulated clock crossing period boundaries: the grant at the start, the lapse of exactly the
unspent, not rolled-over part at the end, rollover, escrow left alone, idempotence across runs
and a restarted broker, the signed log holding every grant and lapse, and bad input."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from orbitq.clients import (
    AlreadyExistsError,
    BrokerClient,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    TransferSpec,
)
from orbitq.clients._calls import Call
from orbitq.ledger.audit import audit_store
from orbitq.ledger.model import Code
from orbitq.services.broker import Broker
from orbitq.services.clock import SimulatedClock, to_ns
from orbitq.services.config import load_config
from orbitq.services.scheduling.placing import tenant_usage
from orbitq.v1 import common_pb2, quota_pb2
from tests.conftest import EPOCH, BrokerHandle, ServerHandle
from tests.integration.sky import operator, tenant_key

DAY = timedelta(days=1)


def _ledger_codes(server: ServerHandle, tenant: str, code: str) -> list[tuple[str, int]]:
    with operator(server) as admin:
        page = admin.list_transfers(tenant, code=code, page_size=1000)
    return [(t.kind, t.amount) for t in reversed(page.items)]


def _available(server: ServerHandle, tenant: str) -> dict[str, int]:
    with operator(server) as admin:
        return {a.kind: a.available for a in admin.balances(tenant)}


def test_a_daily_budget_is_granted_and_the_unspent_part_lapses(
    server: ServerHandle, broker: BrokerHandle, clock: SimulatedClock
) -> None:
    acme = tenant_key(server, "acme")
    tenant_key(server, "globex")
    with operator(server) as admin:
        admin.mint("acme", cpu=40)  # minted tokens never lapse
        (budget,) = admin.grant_budget("acme", cpu=100, period="day")
    # The first period opens at once: the day that contains the grant.
    assert (budget.kind, budget.period) == ("cpu", "day")
    assert budget.period_start_ns == to_ns(EPOCH)
    assert budget.period_end_ns == to_ns(EPOCH + DAY)
    assert (budget.granted, budget.unspent, budget.lapses, budget.rolls_over) == (100, 100, 100, 0)
    assert _available(server, "acme")["cpu"] == 140
    clock.advance(3600)
    with BrokerClient(server.target, acme) as client:
        client.transfer("globex", cpu=30)  # spends budget tokens first
        (seen,) = client.budgets()
    assert (seen.unspent, seen.lapses) == (70, 70)
    # Before the end nothing lapses, however often the job runs.
    server.broker.run_budgets()
    assert _ledger_codes(server, "acme", "lapse") == []
    clock.set(EPOCH + DAY + timedelta(seconds=1))
    report = server.broker.run_budgets()
    assert (report.lapsed, report.granted) == (1, 1)
    assert _ledger_codes(server, "acme", "lapse") == [("cpu", 70)]
    assert _ledger_codes(server, "acme", "grant") == [("cpu", 100), ("cpu", 100)]
    assert _available(server, "acme")["cpu"] == 40 + 100
    # Again, and from a second broker on the same database (a restart, or a replica): the
    # deterministic ids make the ledger answer `exists`; nothing is granted or lapsed twice.
    assert server.broker.run_budgets().granted == 0
    config = replace(load_config(broker.data_dir, db_url=server.broker.config.db_url))
    other = Broker(config, clock)
    other.writer.start()
    try:
        again = other.run_budgets()
        assert (again.granted, again.lapsed, again.failed) == (0, 0, 0)
    finally:
        other.writer.stop()
        other.engine.dispose()
    assert _ledger_codes(server, "acme", "grant") == [("cpu", 100), ("cpu", 100)]
    assert _ledger_codes(server, "acme", "lapse") == [("cpu", 70)]
    # Every grant and lapse is an entry of the signed log, and the audit passes.
    server.broker.sign_checkpoint()
    stored = [
        item
        for item in server.broker.store.all_transfers()
        if item.transfer.code in (Code.GRANT, Code.LAPSE)
    ]
    assert len(stored) == 3
    assert all(item.entry_index >= 0 for item in stored)
    audit_store(server.broker.store, server.broker.signer.verifier())
    # Fair share counts what tenants consumed (settled requests), not what they were granted:
    # acme's budget gives it no place in the scheduler's order.
    assert tenant_usage(server.broker.requests.store, to_ns(clock.now())) == {}


def test_rollover_carries_at_most_its_share_and_escrow_is_not_touched(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    tenant_key(server, "acme")
    tenant_key(server, "globex")
    with operator(server) as admin:
        admin.grant_budget("acme", storage=1000, link=100, period="week", rollover_percent=50)
        # 2025-12-06 is a Saturday: the ISO week began on Monday 2025-12-01.
        budgets = {b.kind: b for b in admin.budgets("acme")}
        assert budgets["storage"].period_start_ns == to_ns(datetime(2025, 12, 1, tzinfo=UTC))
        admin.transfer("globex", storage=200, from_tenant="acme")
        # 90 link tokens reserved (pending, in escrow) at the boundary.
        accounts = {a.kind: a for a in admin.balances("acme")}
        escrow = {(a.system, a.kind): a for a in admin.balances(system=True)}
        (reserved,) = admin.create_transfers(
            [
                TransferSpec(
                    id=0xABC,
                    debit_account_id=accounts["link"].id,
                    credit_account_id=escrow[("escrow", "link")].id,
                    amount=90,
                    kind="link",
                    code="reserve",
                    pending=True,
                )
            ]
        )
        assert reserved.result == "ok"
    clock.set(datetime(2025, 12, 8, tzinfo=UTC))
    server.broker.run_budgets()
    lapses = dict(_ledger_codes(server, "acme", "lapse"))
    # storage: 800 unspent, 500 (50 % of 1000) rolls over, 300 lapse.
    assert lapses["storage"] == 300
    # link: the 90 reserved were spent in this period (they left the tenant's hands), so 10
    # are unspent, all within the 50 % rollover: nothing lapses and 10 carry over.
    assert "link" not in lapses
    with operator(server) as admin:
        budgets = {b.kind: b for b in admin.budgets("acme")}
    assert (budgets["storage"].granted, budgets["storage"].carried_in) == (1000, 500)
    assert budgets["storage"].unspent == 1500
    # At most 50 % of the grant rolls over again; the rest of the pool would lapse.
    assert (budgets["storage"].rolls_over, budgets["storage"].lapses) == (500, 1000)
    assert _available(server, "acme")["storage"] == 1500
    assert (budgets["link"].granted, budgets["link"].carried_in) == (100, 10)


def test_a_reservation_across_the_period_end_counts_where_its_tokens_move(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    """Reserved at 23:59 and released after midnight: spent on day 1 (nothing of the budget
    is left to lapse then), back on day 2, where the returned tokens lapse if unused — a
    reservation across the boundary neither rolls budget tokens over nor lapses minted ones."""
    tenant_key(server, "acme")
    with operator(server) as admin:
        admin.mint("acme", cpu=50)  # minted: never lapse
        admin.grant_budget("acme", cpu=100, period="day")
        accounts = {a.kind: a for a in admin.balances("acme")}
        escrow = {(a.system, a.kind): a for a in admin.balances(system=True)}
        clock.set(EPOCH + DAY - timedelta(seconds=60))
        (reserved,) = admin.create_transfers(
            [
                TransferSpec(
                    id=0xDEF,
                    debit_account_id=accounts["cpu"].id,
                    credit_account_id=escrow[("escrow", "cpu")].id,
                    amount=100,
                    kind="cpu",
                    code="reserve",
                    pending=True,
                )
            ]
        )
        assert reserved.result == "ok"
        clock.set(EPOCH + DAY + timedelta(seconds=1))
        server.broker.run_budgets()
        # Day 1: the 100 budget tokens left in the reservation; the 50 minted stay.
        assert _ledger_codes(server, "acme", "lapse") == []
        assert _available(server, "acme")["cpu"] == 50 + 100
        (released,) = admin.create_transfers(
            [
                TransferSpec(
                    id=0xDF0,
                    debit_account_id=accounts["cpu"].id,
                    credit_account_id=escrow[("escrow", "cpu")].id,
                    amount=0,
                    kind="cpu",
                    code="release",
                    pending_id=0xDEF,
                    void_pending=True,
                )
            ]
        )
        assert released.result == "ok"
    clock.set(EPOCH + 2 * DAY + timedelta(seconds=1))
    server.broker.run_budgets()
    # Day 2: its grant of 100 unspent and the 100 returned: all 200 lapse; the minted 50 stay.
    assert _ledger_codes(server, "acme", "lapse") == [("cpu", 200)]
    assert _available(server, "acme")["cpu"] == 50 + 100


def test_downtime_skips_whole_periods_without_granting_them(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    tenant_key(server, "acme")
    with operator(server) as admin:
        admin.grant_budget("acme", cpu=10, period="day")
    clock.set(EPOCH + 5 * DAY + timedelta(hours=2))
    report = server.broker.run_budgets()
    assert (report.lapsed, report.granted, report.skipped_periods) == (1, 1, 4)
    assert _ledger_codes(server, "acme", "grant") == [("cpu", 10), ("cpu", 10)]
    with operator(server) as admin:
        (budget,) = admin.budgets("acme")
    assert budget.period_start_ns == to_ns(EPOCH + 5 * DAY)


def test_bad_grants_and_who_may_see_budgets(server: ServerHandle) -> None:
    acme = tenant_key(server, "acme")
    tenant_key(server, "globex")
    with operator(server) as admin:
        admin.grant_budget("acme", cpu=100, period="month")
        # The same terms again: the same budget, nothing granted twice.
        (again,) = admin.grant_budget("acme", cpu=100, period="month")
        assert again.granted == 100
        with pytest.raises(AlreadyExistsError, match="already has a cpu budget of 100 per month"):
            admin.grant_budget("acme", cpu=200, period="month")
        with pytest.raises(InvalidArgumentError, match="rollover_percent 101"):
            admin._run(  # the SDK checks it too; the broker must as well
                _raw_grant("acme", 101)
            )
        with pytest.raises(InvalidArgumentError, match="period is required"):
            admin._run(_raw_grant("acme", 0, period=0))
        with pytest.raises(InvalidArgumentError, match="positive amount"):
            admin.grant_budget("acme", period="day")
        with pytest.raises(NotFoundError, match="no tenant named 'nobody'"):
            admin.grant_budget("nobody", cpu=1, period="day")
        with pytest.raises(ValueError, match="unknown period 'fortnight'"):
            admin.grant_budget("acme", cpu=1, period="fortnight")
        assert [b.tenant for b in admin.budgets()] == ["acme"]
    assert _ledger_codes(server, "acme", "grant") == [("cpu", 100)]
    with operator(server) as admin:
        accounts = {a.kind: a.id for a in admin.balances("acme")}
        treasury = {a.kind: a.id for a in admin.balances(system=True) if a.system == "treasury"}
        for code in ("grant", "lapse"):
            with pytest.raises(InvalidArgumentError, match=f"code {code} is reserved for budgets"):
                admin.create_transfers(
                    [
                        TransferSpec(
                            debit_account_id=treasury["cpu"],
                            credit_account_id=accounts["cpu"],
                            amount=1,
                            kind="cpu",
                            code=code,
                        )
                    ]
                )
        # Nor may an operator hand-make a cancellation fee (a charge no request explains).
        with pytest.raises(InvalidArgumentError, match="code cancel_fee is reserved"):
            admin.create_transfers(
                [
                    TransferSpec(
                        debit_account_id=accounts["cpu"],
                        credit_account_id=treasury["cpu"],
                        amount=1,
                        kind="cpu",
                        code="cancel_fee",
                    )
                ]
            )
    with BrokerClient(server.target, acme) as client:
        assert [b.kind for b in client.budgets()] == ["cpu"]
        with pytest.raises(PermissionDeniedError):
            client.budgets("globex")
        with pytest.raises(PermissionDeniedError):
            client.grant_budget("acme", cpu=1, period="day")


def _raw_grant(tenant: str, percent: int, period: int = 1) -> Call[object]:
    """A GrantBudget the SDK would refuse to send (it checks the same things)."""
    request = quota_pb2.GrantBudgetRequest(
        tenant=tenant,
        amounts=common_pb2.Amounts(cpu=5),
        period=period,  # type: ignore[arg-type]
        rollover_percent=percent,
    )
    return Call("quota", "GrantBudget", request, lambda response: response, idempotent=True)


def test_two_brokers_closing_the_same_period_at_once_lapse_it_once(
    server: ServerHandle, broker: BrokerHandle, clock: SimulatedClock
) -> None:
    tenant_key(server, "acme")
    with operator(server) as admin:
        admin.grant_budget("acme", cpu=100, storage=50, link=10, period="day", rollover_percent=20)
    clock.set(EPOCH + DAY)
    config = replace(load_config(broker.data_dir, db_url=server.broker.config.db_url))
    other = Broker(config, clock)
    other.writer.start()
    try:
        start = threading.Barrier(2)
        reports = []

        def run(instance: Broker) -> None:
            start.wait(timeout=30)
            reports.append(instance.run_budgets())

        threads = [threading.Thread(target=run, args=(b,)) for b in (server.broker, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(reports) == 2
        assert sum(r.failed for r in reports) == 0
    finally:
        other.writer.stop()
        other.engine.dispose()
    # Per kind: two grants (the first day's, the second day's) and one lapse of 80 % of it.
    lapses = sorted(_ledger_codes(server, "acme", "lapse"))
    assert lapses == [("cpu", 80), ("link", 8), ("storage", 40)]
    assert len(_ledger_codes(server, "acme", "grant")) == 6
    with operator(server) as admin:
        budgets = {b.kind: b for b in admin.budgets("acme")}
    assert budgets["cpu"].carried_in == 20
    assert budgets["cpu"].period_start_ns == to_ns(EPOCH + DAY)


def test_the_same_grant_twice_at_once_makes_one_budget(server: ServerHandle) -> None:
    tenant_key(server, "acme")
    start = threading.Barrier(4)
    answers: list[str] = []

    def grant() -> None:
        with operator(server) as admin:
            start.wait(timeout=30)
            (budget,) = admin.grant_budget("acme", link=60, period="week")
            answers.append(budget.id)

    threads = [threading.Thread(target=grant) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 4
    assert len(set(answers)) == 1
    assert _ledger_codes(server, "acme", "grant") == [("link", 60)]


def test_replaced_terms_apply_from_the_next_period(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    tenant_key(server, "acme")
    with operator(server) as admin:
        admin.grant_budget("acme", cpu=100, link=10, period="day")
        (cpu,) = admin.grant_budget(
            "acme", cpu=300, period="day", rollover_percent=50, replace=True
        )
        # The current period keeps its grant and its terms: all 100 lapse at its end.
        assert (cpu.amount, cpu.rollover_percent) == (300, 50)
        assert (cpu.granted, cpu.lapses, cpu.rolls_over) == (100, 100, 0)
        # A month instead of a day: the first month starts at or after the day's end.
        admin.grant_budget("acme", link=40, period="month", replace=True)
    clock.set(EPOCH + DAY)
    server.broker.run_budgets()
    assert sorted(_ledger_codes(server, "acme", "lapse")) == [("cpu", 100), ("link", 10)]
    with operator(server) as admin:
        budgets = {b.kind: b for b in admin.budgets("acme")}
    assert (budgets["cpu"].granted, budgets["cpu"].rolls_over) == (300, 150)
    # No link period runs until 2026-01-01 (no grant for the rest of December).
    assert (budgets["link"].period_start_ns, budgets["link"].granted) == (0, 0)
    clock.set(datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
    server.broker.run_budgets()
    with operator(server) as admin:
        budgets = {b.kind: b for b in admin.budgets("acme")}
    assert budgets["link"].period_start_ns == to_ns(datetime(2026, 1, 1, tzinfo=UTC))
    assert budgets["link"].period_end_ns == to_ns(datetime(2026, 2, 1, tzinfo=UTC))
    assert budgets["link"].granted == 40
    # cpu: day 1 (100), day 2 (300), then 2026-01-01 after the skipped days (300); link: day 1
    # (10), then its first month (40).
    assert _ledger_codes(server, "acme", "grant") == [
        ("cpu", 100),
        ("link", 10),
        ("cpu", 300),
        ("cpu", 300),
        ("link", 40),
    ]


def test_a_lost_period_row_is_rebuilt_from_the_ledger(server: ServerHandle) -> None:
    """A run that granted and died before writing the period's row (then a change of terms):
    the next run finds the grant in the ledger and grants nothing again."""
    tenant_key(server, "acme")
    with operator(server) as admin:
        admin.grant_budget("acme", cpu=100, period="day")
    with server.broker.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM budget_periods"))
    with operator(server) as admin:
        admin.grant_budget("acme", cpu=300, period="day", replace=True)
        (budget,) = admin.budgets("acme")
    assert (budget.amount, budget.granted, budget.period_start_ns) == (300, 100, to_ns(EPOCH))
    assert _ledger_codes(server, "acme", "grant") == [("cpu", 100)]


@pytest.mark.parametrize("percent", [0, 35, 100])
def test_many_periods_against_a_model_of_the_books(
    server: ServerHandle, clock: SimulatedClock, percent: int
) -> None:
    """Twelve days of seeded spending (some days over the budget, paid from minted tokens):
    every day's lapse, and the balance after it, equal a model of the rule kept here."""
    rng = random.Random(percent)
    tenant_key(server, "acme")
    tenant_key(server, "globex")
    grant, minted = 1000, 5000
    with operator(server) as admin:
        admin.mint("acme", cpu=minted)
        admin.grant_budget("acme", cpu=grant, period="day", rollover_percent=percent)
    balance, carried = minted + grant, 0
    expected: list[tuple[str, int]] = []
    for day in range(1, 13):
        spend = min(balance, rng.choice([0, 100, 700, 1000, 1600]))
        if spend:
            with operator(server) as admin:
                admin.transfer("globex", cpu=spend, from_tenant="acme")
        balance -= spend
        clock.set(EPOCH + day * DAY + timedelta(minutes=rng.randrange(0, 600)))
        server.broker.run_budgets()
        unspent = max(0, grant + carried - spend)
        carried = min(unspent, grant * percent // 100)
        lapse = min(unspent - carried, balance)
        balance += grant - lapse
        if lapse:
            expected.append(("cpu", lapse))  # nothing lapsing writes no transfer
        assert _ledger_codes(server, "acme", "lapse") == expected, f"day {day}"
        assert _available(server, "acme")["cpu"] == balance, f"day {day}"
        with operator(server) as admin:
            (budget,) = admin.budgets("acme")
        assert (budget.granted, budget.carried_in) == (grant, carried)
    assert len(_ledger_codes(server, "acme", "grant")) == 13


def test_runs_rotate_through_due_budgets(server: ServerHandle) -> None:
    """A run looks at a bounded number of due budgets and the next run continues after the
    last one it looked at, wrapping around: budgets that stay due cannot starve the rest."""
    with operator(server) as admin:
        for name in ("ant", "bee", "cat"):
            tenant_key(server, name)
            admin.grant_budget(name, cpu=10, period="day")
    budgets = server.broker.budgets
    later = to_ns(EPOCH + 3 * DAY)  # every open period has ended: all three are due
    seen = [[row.tenant for row in budgets._due_rotating(later, None, 2)] for _ in range(3)]
    assert seen == [["ant", "bee"], ["cat", "ant"], ["bee", "cat"]]
    # Asking for one tenant neither reads nor moves the rotation.
    assert [row.tenant for row in budgets._due_rotating(later, "bee", 2)] == ["bee"]
    assert [row.tenant for row in budgets._due_rotating(later, None, 2)] == ["ant", "bee"]
