"""Usage reports: what each tenant reserved, settled, released and refunded, from the ledger.

Owns: `UsageReports.report`, the sums behind `orbitq usage report` (Slurm's `sreport` and
`sacct` are the anchors): per tenant, group and kind, over a ledger-time range [since, until)
of at most `REPORT_DAYS_MAX` days, the transfers by code —

| column | transfers |
| --- | --- |
| reserved | `reserve` (pending tenant -> escrow) |
| settled | `settle` (posted part of a reservation) and `cancel_fee` (a late cancellation's fee) |
| released | `release` and `expire` voids, and the unused rest of each `settle` |
| refunded | `refund` voids (the operator failed the request) |
| granted, lapsed | `grant` and `lapse` (budgets, orbitq.services.budgets) |

Groups: a UTC day, an ISO week (from Monday) or a month (the date of its first day), the node
the request was placed on ("" when never placed), or none (by kind). Sums run in SQL (per day,
kind and code, or per request for nodes), so the work is bounded by the range, not by the
number of transfers; at most `REPORT_GROUPS_MAX` SQL groups and `REPORT_ROWS_MAX` rows, above
which the call is RESOURCE_EXHAUSTED with what to narrow. A tenant sees only itself
(another tenant: PERMISSION_DENIED); operators every tenant, or one.

Does not own: the ledger (read only, through SQL on its tables) or transport.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum
from typing import Any

import sqlalchemy as sa

from orbitq.ledger.model import NANOS_PER_SECOND, TIMESTAMP_MAX, Code, Kind, Result
from orbitq.services.auth import Principal
from orbitq.services.errors import InvalidArgumentError, ResourceExhaustedError
from orbitq.services.tenants import Tenants

REPORT_DAYS_MAX = 366
REPORT_GROUPS_MAX = 100_000
REPORT_ROWS_MAX = 10_000
_NODE_LOOKUP_CHUNK = 500
_DAY_NS = 86_400 * NANOS_PER_SECOND
_EPOCH = date(1970, 1, 1)
_CODES = (
    Code.RESERVE,
    Code.SETTLE,
    Code.CANCEL_FEE,
    Code.RELEASE,
    Code.EXPIRE,
    Code.REFUND,
    Code.GRANT,
    Code.LAPSE,
)


class Grouping(IntEnum):
    """Equal to orbitq.v1.UsageGrouping."""

    DAY = 1
    WEEK = 2
    MONTH = 3
    NODE = 4
    KIND = 5


@dataclass
class UsageRow:
    tenant: str
    group: str
    kind: Kind
    reserved: int = 0
    settled: int = 0
    released: int = 0
    refunded: int = 0
    granted: int = 0
    lapsed: int = 0

    def add(self, code: int, amount: int, released: int) -> None:
        if code == Code.RESERVE:
            self.reserved += amount
        elif code in (Code.SETTLE, Code.CANCEL_FEE):
            # A cancellation fee is posted from escrow like a settlement: a charge.
            self.settled += amount
            self.released += released - amount
        elif code in (Code.RELEASE, Code.EXPIRE):
            self.released += amount
        elif code == Code.REFUND:
            self.refunded += amount
        elif code == Code.GRANT:
            self.granted += amount
        elif code == Code.LAPSE:
            self.lapsed += amount


@dataclass
class _Sums:
    rows: dict[tuple[str, str, int], UsageRow] = field(default_factory=dict)

    def add(self, tenant: str, group: str, kind: int, code: int, amount: int, rel: int) -> None:
        key = (tenant, group, kind)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = UsageRow(tenant, group, Kind(kind))
        row.add(code, amount, rel)


def check_range(since_ns: int, until_ns: int) -> None:
    if not since_ns or not until_ns:
        raise InvalidArgumentError("give both since and until (the report's time range)")
    if max(since_ns, until_ns) > TIMESTAMP_MAX:
        raise InvalidArgumentError(
            f"since and until are nanoseconds since the Unix epoch, at most {TIMESTAMP_MAX}"
        )
    if until_ns <= since_ns:
        raise InvalidArgumentError("until must be after since (the range is [since, until))")
    if until_ns - since_ns > REPORT_DAYS_MAX * _DAY_NS:
        days = (until_ns - since_ns) / _DAY_NS
        raise InvalidArgumentError(
            f"the range covers {days:,.1f} days; a report covers at most {REPORT_DAYS_MAX} days"
            " (ask for several)"
        )


class UsageReports:
    def __init__(self, engine: sa.Engine, tenants: Tenants) -> None:
        self._engine = engine
        self._tenants = tenants

    def report(
        self, principal: Principal, tenant: str, since_ns: int, until_ns: int, by: int
    ) -> list[UsageRow]:
        scope: str | None = None
        if tenant or not principal.is_operator:
            scope = principal.tenant_scope(tenant, "read the usage of")
            self._tenants.require(scope)
        if by not in {g.value for g in Grouping}:
            raise InvalidArgumentError("by: use day, week, month, node or kind")
        check_range(since_ns, until_ns)
        grouping = Grouping(by)
        sums = _Sums()
        if grouping is Grouping.NODE:
            self._by_node(sums, scope, since_ns, until_ns)
        else:
            for row in self._query(
                scope, since_ns, until_ns, per_day=grouping is not Grouping.KIND
            ):
                group = "" if grouping is Grouping.KIND else _label(int(row.day), grouping)
                sums.add(row.tenant, group, row.kind, row.code, int(row.amount), int(row.rel))
        if len(sums.rows) > REPORT_ROWS_MAX:
            raise ResourceExhaustedError(
                f"the report has {len(sums.rows):,} rows, more than {REPORT_ROWS_MAX:,}: name a"
                " tenant, group coarser or narrow the range"
            )
        return [sums.rows[key] for key in sorted(sums.rows)]

    def _query(
        self,
        tenant: str | None,
        since_ns: int,
        until_ns: int,
        *,
        per_day: bool = False,
        per_request: bool = False,
    ) -> list[Any]:
        # The tenant's account is the debit side of every code but grant (treasury -> tenant).
        columns = ["a.tenant AS tenant", "t.kind AS kind", "t.code AS code"]
        groups = ["a.tenant", "t.kind", "t.code"]
        joins = ""
        if per_day:
            columns.append("(t.timestamp_ns / :day_ns) AS day")
            groups.append("(t.timestamp_ns / :day_ns)")
        if per_request:
            # Settles and voids name their reservation; its user_data is the request id.
            joins = " LEFT JOIN ledger_transfers r ON r.id = t.pending_id"
            request = "(CASE WHEN t.pending_id IS NULL THEN t.user_data ELSE r.user_data END)"
            columns.append(f"{request} AS request")
            groups.append(request)
        codes = ", ".join(str(int(code)) for code in _CODES)
        where = (
            f"t.result = {int(Result.OK)} AND t.code IN ({codes})"
            " AND t.timestamp_ns >= :since AND t.timestamp_ns < :until"
        )
        if tenant is not None:
            # Through the (account, timestamp) indexes: only this tenant's transfers are read.
            where += (
                " AND a.tenant = :tenant AND (t.debit_account_id IN (SELECT id FROM"
                " ledger_accounts WHERE tenant = :tenant) OR t.credit_account_id IN (SELECT id"
                " FROM ledger_accounts WHERE tenant = :tenant))"
            )
        # Only constant column lists and codes are formatted in; values are bound.
        sql = sa.text(
            f"SELECT {', '.join(columns)}, SUM(t.amount) AS amount, SUM(t.released) AS rel"  # noqa: S608
            " FROM ledger_transfers t"
            " JOIN ledger_accounts a ON a.id = (CASE WHEN t.code = :grant"
            " THEN t.credit_account_id ELSE t.debit_account_id END)"
            f"{joins} WHERE {where} AND a.tenant IS NOT NULL"
            f" GROUP BY {', '.join(groups)} LIMIT :limit"
        )
        params = {
            "day_ns": _DAY_NS,
            "since": since_ns,
            "until": until_ns,
            "tenant": tenant,
            "grant": int(Code.GRANT),
            "limit": REPORT_GROUPS_MAX + 1,
        }
        with self._engine.connect() as connection:
            rows = list(connection.execute(sql, params).all())
        if len(rows) > REPORT_GROUPS_MAX:
            raise ResourceExhaustedError(
                f"the range holds more than {REPORT_GROUPS_MAX:,} groups of transfers: name a"
                " tenant or narrow the range"
            )
        return rows

    def _by_node(self, sums: _Sums, tenant: str | None, since_ns: int, until_ns: int) -> None:
        rows = self._query(tenant, since_ns, until_ns, per_request=True)
        requests = {bytes(row.request).hex() for row in rows if _is_request(row)}
        nodes = self._nodes_of(sorted(requests))
        for row in rows:
            node = nodes.get(bytes(row.request).hex(), "") if _is_request(row) else ""
            sums.add(row.tenant, node, row.kind, row.code, int(row.amount), int(row.rel))

    def _nodes_of(self, request_ids: list[str]) -> dict[str, str]:
        requests = sa.table("requests", sa.column("id"), sa.column("placed_node"))
        found: dict[str, str] = {}
        with self._engine.connect() as connection:
            for first in range(0, len(request_ids), _NODE_LOOKUP_CHUNK):
                chunk = request_ids[first : first + _NODE_LOOKUP_CHUNK]
                for row in connection.execute(
                    sa.select(requests.c.id, requests.c.placed_node).where(requests.c.id.in_(chunk))
                ):
                    found[row.id] = row.placed_node or ""
        return found


def _is_request(row: Any) -> bool:
    # Grants and lapses carry a budget's id and period (24 bytes), not a request id.
    return (
        row.code not in (Code.GRANT, Code.LAPSE)
        and row.request is not None
        and len(bytes(row.request)) == 16
    )


def _label(day: int, grouping: Grouping) -> str:
    first = _EPOCH + timedelta(days=day)
    if grouping is Grouping.WEEK:
        first -= timedelta(days=first.weekday())
    elif grouping is Grouping.MONTH:
        first = first.replace(day=1)
    return first.isoformat()


def day_labels(instants: Iterable[datetime], grouping: Grouping) -> list[str]:
    """The group label of each instant (for tests and clients that bucket on their own)."""
    return [
        _label((instant.astimezone(UTC).date() - _EPOCH).days, grouping) for instant in instants
    ]
