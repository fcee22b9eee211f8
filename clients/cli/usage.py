"""`orbitq usage report`: reserved, settled, released, refunded (and granted, lapsed budget)
tokens per tenant, group and kind over a time range, from the ledger — a table, `--json` or
`--csv` (shaped after Slurm's `sreport`/`sacct`)."""

from __future__ import annotations

import argparse
import csv
import sys

from orbitq.clients import UsageRow
from orbitq.clients.cli.connect import client_from, instant, ns_of, rfc3339
from orbitq.clients.cli.output import print_json, print_table
from orbitq.clients.cli.registry import CommandError, CommandTree

COLUMNS = [
    "tenant",
    "group",
    "kind",
    "reserved",
    "settled",
    "released",
    "refunded",
    "granted",
    "lapsed",
]


def register(tree: CommandTree) -> None:
    tree.group("usage", "usage reports from the ledger")
    report = tree.add(
        "usage report",
        "tokens reserved, settled, released and refunded per kind over a range",
        _report,
        connects=True,
        json_output=True,
    )
    report.add_argument(
        "--tenant", default="", help="one tenant (tenants: only their own; default: all/yours)"
    )
    report.add_argument("--since", type=instant, required=True, help="start, e.g. 2025-12-01")
    report.add_argument("--until", type=instant, required=True, help="end (excluded), ≤ 366 days")
    report.add_argument(
        "--by", choices=("day", "week", "month", "node", "kind"), default="day", help="grouping"
    )
    report.add_argument("--csv", action="store_true", help="print CSV with a header row")


def _row(row: UsageRow) -> dict[str, object]:
    return {
        "tenant": row.tenant,
        "group": row.group,
        "kind": row.kind,
        "reserved": row.reserved,
        "settled": row.settled,
        "released": row.released,
        "refunded": row.refunded,
        "granted": row.granted,
        "lapsed": row.lapsed,
    }


def _report(args: argparse.Namespace) -> int:
    if args.json and args.csv:
        raise CommandError("choose one of --json and --csv")
    with client_from(args) as client:
        rows = client.usage_report(
            tenant=args.tenant, since_ns=ns_of(args.since), until_ns=ns_of(args.until), by=args.by
        )
    table = [_row(row) for row in rows]
    if args.json:
        print_json(
            {
                "since": rfc3339(args.since),
                "until": rfc3339(args.until),
                "by": args.by,
                "rows": table,
            }
        )
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    else:
        print(f"usage {rfc3339(args.since)} .. {rfc3339(args.until)} by {args.by}:")
        print_table(table, COLUMNS)
    return 0
