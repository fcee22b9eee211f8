"""Usage reports through the real server, SDK and CLI, on SQLite and PostgreSQL: the report's
totals equal the ledger's transfers summed independently here (by day, week, kind and node),
tenant isolation, bad ranges, and the CLI's table, --json and --csv."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orbitq.clients import (
    BrokerClient,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RequestSpec,
    TransferRecord,
    TransferSpec,
    UsageRow,
)
from orbitq.clients.cli.main import EXIT_BROKER_ERROR, main
from orbitq.services.clock import SimulatedClock, to_ns
from tests.conftest import EPOCH, ServerHandle
from tests.integration.sky import operator, tenant_key
from tests.requests.sky import build_world

pytestmark = pytest.mark.settlement("plan")

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SINCE = to_ns(EPOCH - DAY)
UNTIL = to_ns(EPOCH + 10 * DAY)


def job(name: str) -> RequestSpec:
    return RequestSpec(
        name=name,
        workload="image:v1",
        cpu_millicores=1000,
        run_seconds=600,
        storage_mb=500,
        output_mb=200,
        not_before=EPOCH,
        deadline=EPOCH + 6 * HOUR,
    )


def _history(server: ServerHandle, tenant: str) -> list[TransferRecord]:
    with operator(server) as admin:
        page = admin.list_transfers(tenant, page_size=1000)
        assert not page.next_page_token
        own = {a.id for a in admin.balances(tenant)}
    # Only the transfers the tenant's own account is the paying side of (and grants).
    return [t for t in page.items if t.debit_account_id in own or t.code == "grant"]


Sums = Counter[tuple[str, str, str]]


def _expected(records: list[TransferRecord], group_of: dict[str, str] | None = None) -> Sums:
    """The ledger summed here, independently of the broker's SQL."""
    sums: Sums = Counter()
    reservations = {record.id: record.amount for record in records if record.code == "reserve"}
    for record in records:
        day = datetime.fromtimestamp(record.timestamp_ns // 10**9, UTC).date().isoformat()
        group = day if group_of is None else group_of.get(record.id, "")
        if record.code == "settle":
            # A settle posts part of its reservation; the rest returns to the tenant.
            rest = reservations[record.pending_id] - record.amount
            if rest:
                sums[(group, record.kind, "released")] += rest
        column = {
            "reserve": "reserved",
            "settle": "settled",
            "release": "released",
            "expire": "released",
            "refund": "refunded",
            "grant": "granted",
            "lapse": "lapsed",
        }.get(record.code)
        if column is not None:
            sums[(group, record.kind, column)] += record.amount
    return sums


def _report_sums(rows: list[UsageRow]) -> Sums:
    sums: Sums = Counter()
    for row in rows:
        for column in ("reserved", "settled", "released", "refunded", "granted", "lapsed"):
            value = getattr(row, column)
            if value:
                sums[(row.group, row.kind, column)] += value
    return sums


def _run_requests(server: ServerHandle, clock: SimulatedClock) -> tuple[str, str]:
    """acme: one request completed (settled; the unused storage comes back), one cancelled
    (released), a day apart; a budget granted. Returns (acme's key, the completed's node)."""
    build_world(server.broker)
    key = tenant_key(server, "acme")
    tenant_key(server, "globex")
    with operator(server) as admin:
        admin.mint("acme", cpu=100_000, storage=100_000, link=10_000)
        admin.mint("globex", cpu=10_000, storage=10_000, link=1_000)
        admin.grant_budget("acme", link=100, period="day")  # 16 spent, 84 lapse
    with BrokerClient(server.target, key, timeout=30) as acme:
        first = acme.submit(job("one")).request
        server.broker.scheduling.run_cycle()
        placed = acme.get_request(first.id)
        assert placed.state == "placed"
        assert placed.placement is not None
        clock.set(placed.placement.start)
        server.broker.scheduling.advance()
        clock.set(placed.placement.finish)
        server.broker.scheduling.advance()
        assert acme.get_request(first.id).state == "completed"
        clock.set(EPOCH + DAY + HOUR)
        server.broker.run_budgets()
        second = acme.submit(replace(job("two"), deadline=EPOCH + DAY + 6 * HOUR)).request
        acme.cancel_request(second.id)
    # Operator-made reservations: one refunded, one left to expire by its timeout.
    with operator(server) as admin:
        cpu = {a.kind: a.id for a in admin.balances("acme")}["cpu"]
        escrow = next(
            a.id for a in admin.balances(system=True) if (a.system, a.kind) == ("escrow", "cpu")
        )
        reserve = TransferSpec(
            debit_account_id=cpu, credit_account_id=escrow, kind="cpu", code="reserve", pending=True
        )
        made = admin.create_transfers(
            [
                replace(reserve, id=0xA1, amount=7),
                replace(reserve, id=0xA2, amount=5, timeout_seconds=60),
            ]
        )
        assert [o.result for o in made] == ["ok", "ok"]
        (refund,) = admin.create_transfers(
            [TransferSpec(id=0xA3, pending_id=0xA1, code="refund", void_pending=True)]
        )
        assert refund.result == "ok"
    clock.advance(120)
    server.broker.expire_due()
    return key, placed.placement.node


def test_report_totals_equal_the_ledger_by_day_kind_and_node(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    _, node = _run_requests(server, clock)
    records = _history(server, "acme")
    with operator(server) as admin:
        by_day = admin.usage_report(since_ns=SINCE, until_ns=UNTIL, by="day", tenant="acme")
        everyone = admin.usage_report(since_ns=SINCE, until_ns=UNTIL, by="kind")
        by_week = admin.usage_report(since_ns=SINCE, until_ns=UNTIL, by="week", tenant="acme")
        by_node = admin.usage_report(since_ns=SINCE, until_ns=UNTIL, by="node", tenant="acme")
    expected = _expected(records)
    assert _report_sums(by_day) == expected
    assert {row.group for row in by_day} == {
        EPOCH.date().isoformat(),
        (EPOCH + DAY).date().isoformat(),
    }
    # Something of every column the test made happen.
    columns = {column for (_, _, column) in expected}
    assert columns == {"reserved", "settled", "released", "refunded", "granted", "lapsed"}
    # Every reservation ended settled, released (or expired) or refunded, in full.
    totals: Counter[tuple[str, str]] = Counter()
    for (_, kind, column), value in expected.items():
        totals[(kind, column)] += value
    for kind in ("cpu", "storage", "link"):
        ended = totals[(kind, "settled")] + totals[(kind, "released")] + totals[(kind, "refunded")]
        assert totals[(kind, "reserved")] == ended
    assert (totals[("cpu", "refunded")], totals[("storage", "refunded")]) == (7, 0)
    # By kind: one row per tenant and kind; globex did nothing but receive a mint.
    assert {row.tenant for row in everyone} == {"acme"}
    kind_sums: Counter[tuple[str, str]] = Counter()
    for row in everyone:
        kind_sums[(row.kind, "reserved")] += row.reserved
    assert kind_sums[("cpu", "reserved")] == totals[("cpu", "reserved")]
    # By week: 2025-12-06 and 12-07 are in the ISO week of Monday 2025-12-01.
    assert {row.group for row in by_week} == {"2025-12-01"}
    week: Sums = Counter()
    for (_, kind, column), value in expected.items():
        week[("2025-12-01", kind, column)] += value
    assert _report_sums(by_week) == week
    # By node: the completed request's transfers on its node; the cancelled one never placed
    # ("") and the budget's grants and lapses belong to no node.
    groups = {row.group for row in by_node}
    assert groups == {node, ""}
    on_node = {row.kind: row for row in by_node if row.group == node}
    assert (on_node["cpu"].settled, on_node["cpu"].reserved) == (600, 600)


def test_tenants_see_only_themselves_and_bad_ranges_are_refused(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    key = tenant_key(server, "acme")
    tenant_key(server, "globex")
    with operator(server) as admin:
        admin.grant_budget("globex", cpu=5, period="day")
        with pytest.raises(NotFoundError, match="no tenant named 'nobody'"):
            admin.usage_report(since_ns=SINCE, until_ns=UNTIL, tenant="nobody")
    with BrokerClient(server.target, key) as acme:
        # Its own report: globex's grant is not in it.
        assert acme.usage_report(since_ns=SINCE, until_ns=UNTIL) == []
        with pytest.raises(PermissionDeniedError, match="cannot read the usage of tenant 'globex'"):
            acme.usage_report(since_ns=SINCE, until_ns=UNTIL, tenant="globex")
        with pytest.raises(InvalidArgumentError, match="until must be after since"):
            acme.usage_report(since_ns=UNTIL, until_ns=SINCE)
        with pytest.raises(InvalidArgumentError, match="at most 366 days"):
            acme.usage_report(
                since_ns=SINCE, until_ns=SINCE + to_ns(EPOCH + 367 * DAY) - to_ns(EPOCH)
            )
        with pytest.raises(InvalidArgumentError, match="give both since and until"):
            acme.usage_report(since_ns=0, until_ns=UNTIL)
        with pytest.raises(ValueError, match="unknown grouping 'year'"):
            acme.usage_report(since_ns=SINCE, until_ns=UNTIL, by="year")


def test_cli_report_as_table_json_and_csv(
    server: ServerHandle, clock: SimulatedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    op = server.operator_key

    def run(key: str, *args: str) -> int:
        return main([*args, "--target", server.target, "--api-key", key])

    assert run(op, "tenant", "create", "acme") == 0
    assert (
        run(op, "quota", "grant", "acme", "--cpu", "7200", "--period", "day", "--rollover", "10%")
        == 0
    )
    assert "7,200 cpu per day (rollover 10%)" in capsys.readouterr().out
    clock.set(EPOCH + DAY)
    server.broker.run_budgets()
    base = ["usage", "report", "--since", "2025-12-01", "--until", "2025-12-31"]
    assert run(op, *base, "--tenant", "acme", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    rows = {(r["group"], r["kind"]): r for r in report["rows"]}
    assert rows[("2025-12-06", "cpu")]["granted"] == 7200
    assert rows[("2025-12-07", "cpu")]["granted"] == 7200
    # 10 % of 7,200 rolled over; the other 6,480 lapsed at the boundary (on the 7th).
    assert rows[("2025-12-07", "cpu")]["lapsed"] == 6480
    assert run(op, *base, "--by", "month", "--csv") == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["tenant"], r["group"], r["kind"], r["granted"], r["lapsed"]) for r in parsed] == [
        ("acme", "2025-12-01", "cpu", "14400", "6480")
    ]
    assert run(op, *base, "--by", "kind") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[:4] == ["TENANT", "GROUP", "KIND", "RESERVED"]
    assert run(op, "quota", "budgets") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "TENANT",
        "KIND",
        "AMOUNT",
        "PERIOD",
        "ROLLOVER",
        "UNSPENT",
        "LAPSES",
        "AT",
    ]
    # The pool of the 7th: 7,200 granted + 720 rolled in; at most 720 roll over again.
    assert lines[1].split()[:7] == ["acme", "cpu", "7,200", "day", "10%", "7,920", "7,200"]
    assert run(op, "quota", "budgets", "acme", "--json") == 0
    (budget,) = json.loads(capsys.readouterr().out)["budgets"]
    assert (budget["carried_in"], budget["rolls_over"]) == (720, 720)
    assert budget["period_end"] == "2025-12-08T00:00:00Z"
    assert run(op, "quota", "balance", "acme") == 0
    balance = capsys.readouterr().out
    assert "lapse at the end of the current period" in balance
    assert "2025-12-08T00:00:00" in balance
    assert run(op, *base[:3], "2025-12-31", "--until", "2025-12-01") == EXIT_BROKER_ERROR
    assert "until must be after since" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        run(op, "quota", "grant", "acme", "--cpu", "1", "--period", "day", "--rollover", "150%")
    assert refused.value.code == 2
    assert "use none or a percentage from 0% to 100%" in capsys.readouterr().err
