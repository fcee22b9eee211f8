"""`orbitq quota mint|balance|transfer|history|grant|budgets`: tokens of tenants, and budgets
granted per period (the balance shows what lapses when)."""

from __future__ import annotations

import argparse
from datetime import datetime

from orbitq.clients import (
    Account,
    BrokerClient,
    Budget,
    TransferOutcome,
    TransferRecord,
    parse_id,
)
from orbitq.clients.cli.connect import amount, client_from, instant, ns_of, rfc3339, rfc3339_ns
from orbitq.clients.cli.output import print_json, print_table
from orbitq.clients.cli.registry import CommandError, CommandTree

UNITS = {"cpu": "core-s", "storage": "MB-h", "link": "link-s"}
HISTORY_LIMIT_MAX = 10_000


def register(tree: CommandTree) -> None:
    tree.group("quota", "quota tokens: mint, balances, transfers, history")
    mint = tree.add("quota mint", "create tokens for a tenant (operator)", _mint, connects=True)
    mint.add_argument("tenant")
    _amount_flags(mint)
    _id_flag(mint)
    balance = tree.add(
        "quota balance",
        "balances of a tenant (default: your own)",
        _balance,
        connects=True,
        json_output=True,
    )
    balance.add_argument("tenant", nargs="?", default="")
    balance.add_argument("--system", action="store_true", help="the system accounts (operator)")
    transfer = tree.add("quota transfer", "move tokens to another tenant", _transfer, connects=True)
    transfer.add_argument("--to", required=True, metavar="TENANT", help="receiving tenant")
    transfer.add_argument(
        "--from",
        dest="from_tenant",
        default="",
        metavar="TENANT",
        help="paying tenant (operators only; default: the key's tenant)",
    )
    _amount_flags(transfer)
    _id_flag(transfer)
    history = tree.add(
        "quota history",
        "transfers of a tenant, with balances before and after",
        _history,
        connects=True,
        json_output=True,
    )
    history.add_argument("tenant")
    history.add_argument("--since", type=instant, help="RFC 3339 start (default: the last --limit)")
    history.add_argument("--kind", choices=sorted(UNITS), help="only this resource kind")
    history.add_argument("--limit", type=int, default=50, help="at most this many transfers")
    grant = tree.add(
        "quota grant",
        "give a tenant a budget granted every period that lapses at its end (operator)",
        _grant,
        connects=True,
        json_output=True,
    )
    grant.add_argument("tenant")
    _amount_flags(grant)
    grant.add_argument(
        "--period", required=True, choices=("day", "week", "month"), help="UTC day, ISO week, month"
    )
    grant.add_argument(
        "--rollover",
        type=_rollover,
        default=0,
        metavar="none|N%",
        help="share of a period's grant that carries over if unspent (default: none)",
    )
    grant.add_argument(
        "--replace",
        action="store_true",
        help="change the terms of existing budgets of these kinds, from the next period",
    )
    budgets = tree.add(
        "quota budgets",
        "budgets and their current period (default: your own; operators: every tenant's)",
        _budgets,
        connects=True,
        json_output=True,
    )
    budgets.add_argument("tenant", nargs="?", default="")


def _rollover(text: str) -> int:
    value = text.strip().lower()
    if value == "none":
        return 0
    digits = value.removesuffix("%")
    if not digits.isdigit() or not 0 <= int(digits) <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: use none or a percentage from 0% to 100%")
    return int(digits)


def _amount_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cpu", type=amount, default=0, metavar="N", help="core-seconds")
    parser.add_argument("--storage", type=amount, default=0, metavar="N", help="MB-hours")
    parser.add_argument("--link", type=amount, default=0, metavar="N", help="link-seconds")


def _id_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--id",
        help="idempotency id: 32 hex digits or a UUID (repeat the command with the same id"
        " safely; default: a new random id)",
    )


def _parsed_id(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_id(text)
    except ValueError as error:
        raise CommandError(f"--id: {error}") from None


def _require_amount(args: argparse.Namespace) -> None:
    if not (args.cpu or args.storage or args.link):
        raise CommandError("give at least one of --cpu, --storage, --link with a positive amount")


def _describe(outcomes: list[TransferOutcome]) -> str:
    parts = []
    for outcome in outcomes:
        if outcome.transfer is not None:
            record = outcome.transfer
            parts.append(f"{record.amount:,} {record.kind} ({outcome.result})")
    return ", ".join(parts)


def _mint(args: argparse.Namespace) -> int:
    _require_amount(args)
    with client_from(args) as client:
        outcomes = client.mint(
            args.tenant,
            cpu=args.cpu,
            storage=args.storage,
            link=args.link,
            id=_parsed_id(args.id),
        )
    print(f"minted for {args.tenant}: {_describe(outcomes)}")
    return 0


def _transfer(args: argparse.Namespace) -> int:
    _require_amount(args)
    with client_from(args) as client:
        outcomes = client.transfer(
            args.to,
            cpu=args.cpu,
            storage=args.storage,
            link=args.link,
            from_tenant=args.from_tenant,
            id=_parsed_id(args.id),
        )
    print(f"transferred to {args.to}: {_describe(outcomes)}")
    return 0


def _account_row(account: Account) -> dict[str, object]:
    return {
        "owner": account.owner,
        "kind": account.kind,
        "available": account.available,
        "reserved": account.debits_pending,
        "balance": account.credits_posted - account.debits_posted,
        "unit": UNITS.get(account.kind, ""),
        "account": account.id,
    }


def _account_json(account: Account) -> dict[str, object]:
    return {
        "id": account.id,
        "owner": account.owner,
        "kind": account.kind,
        "available": account.available,
        "debits_pending": account.debits_pending,
        "debits_posted": account.debits_posted,
        "credits_pending": account.credits_pending,
        "credits_posted": account.credits_posted,
    }


def _balance(args: argparse.Namespace) -> int:
    budgets: list[Budget] = []
    with client_from(args) as client:
        accounts = client.balances(args.tenant, system=args.system)
        if not args.system and accounts:
            budgets = client.budgets(accounts[0].tenant)
    if args.json:
        print_json(
            {
                "accounts": [_account_json(account) for account in accounts],
                "budgets": [_budget_json(budget) for budget in budgets],
            }
        )
        return 0
    print_table(
        [_account_row(account) for account in accounts],
        ["owner", "kind", "available", "reserved", "balance", "unit", "account"],
    )
    if budgets:
        print()
        print("budget tokens that lapse at the end of the current period:")
        print_table(
            [_budget_row(budget) for budget in budgets],
            ["kind", "granted", "carried_in", "unspent", "lapses", "rolls_over", "at"],
        )
    return 0


def _grant(args: argparse.Namespace) -> int:
    _require_amount(args)
    with client_from(args) as client:
        budgets = client.grant_budget(
            args.tenant,
            cpu=args.cpu,
            storage=args.storage,
            link=args.link,
            period=args.period,
            rollover_percent=args.rollover,
            replace=args.replace,
        )
    if args.json:
        print_json({"budgets": [_budget_json(budget) for budget in budgets]})
        return 0
    for budget in budgets:
        rollover = f"{budget.rollover_percent}%" if budget.rollover_percent else "none"
        print(
            f"budget for {budget.tenant}: {budget.amount:,} {budget.kind} per {budget.period}"
            f" (rollover {rollover}); granted {budget.granted:,} for the period until"
            f" {rfc3339_ns(budget.period_end_ns)}"
        )
    return 0


def _budgets(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        budgets = client.budgets(args.tenant)
    if args.json:
        print_json({"budgets": [_budget_json(budget) for budget in budgets]})
        return 0
    print_table(
        [{**_budget_row(budget), "tenant": budget.tenant} for budget in budgets],
        ["tenant", "kind", "amount", "period", "rollover", "unspent", "lapses", "at"],
    )
    return 0


def _budget_row(budget: Budget) -> dict[str, object]:
    return {
        "kind": budget.kind,
        "amount": budget.amount,
        "period": budget.period,
        "rollover": f"{budget.rollover_percent}%" if budget.rollover_percent else "none",
        "granted": budget.granted,
        "carried_in": budget.carried_in,
        "unspent": budget.unspent,
        "lapses": budget.lapses,
        "rolls_over": budget.rolls_over,
        "at": rfc3339_ns(budget.period_end_ns) if budget.period_end_ns else "-",
    }


def _budget_json(budget: Budget) -> dict[str, object]:
    return {
        "id": budget.id,
        "tenant": budget.tenant,
        "kind": budget.kind,
        "amount": budget.amount,
        "period": budget.period,
        "rollover_percent": budget.rollover_percent,
        "period_start": rfc3339_ns(budget.period_start_ns) if budget.period_start_ns else None,
        "period_end": rfc3339_ns(budget.period_end_ns) if budget.period_end_ns else None,
        "granted": budget.granted,
        "carried_in": budget.carried_in,
        "unspent": budget.unspent,
        "lapses": budget.lapses,
        "rolls_over": budget.rolls_over,
    }


def _history(args: argparse.Namespace) -> int:
    if not 0 < args.limit <= HISTORY_LIMIT_MAX:
        raise CommandError(f"--limit must be between 1 and {HISTORY_LIMIT_MAX}")
    since: datetime | None = args.since
    with client_from(args) as client:
        now_accounts = client.balances(args.tenant)
        records = _collect(client, args.tenant, args.kind or "", since, args.limit)
        opening: list[Account] = []
        if since is not None:
            opening = client.balances(args.tenant, at_timestamp_ns=ns_of(since) - 1)
    own = {account.id for account in now_accounts}
    if args.kind:
        now_accounts = [a for a in now_accounts if a.kind == args.kind]
        opening = [a for a in opening if a.kind == args.kind]
    rows = [_history_row(record, own) for record in records]
    if args.json:
        print_json(
            {
                "tenant": args.tenant,
                "since": rfc3339(since) if since else None,
                "opening": [_account_json(a) for a in opening],
                "transfers": rows,
                "closing": [_account_json(a) for a in now_accounts],
            }
        )
        return 0
    if since is not None:
        print(f"balances of {args.tenant} at {rfc3339(since)}:")
        print_table([_account_row(a) for a in opening], ["kind", "available", "reserved", "unit"])
        print()
    print(f"transfers of {args.tenant} ({len(rows)}, oldest first):")
    print_table(rows, ["time", "code", "kind", "change", "flags", "counterparty", "id"])
    print()
    print(f"balances of {args.tenant} now:")
    print_table([_account_row(a) for a in now_accounts], ["kind", "available", "reserved", "unit"])
    return 0


def _collect(
    client: BrokerClient, tenant: str, kind: str, since: datetime | None, limit: int
) -> list[TransferRecord]:
    records: list[TransferRecord] = []
    token = ""
    while len(records) < limit:
        page = client.list_transfers(
            tenant,
            kind=kind,
            since_ns=ns_of(since) if since else 0,
            page_size=min(1000, limit - len(records)),
            page_token=token,
        )
        records.extend(page.items)
        token = page.next_page_token
        if not token:
            break
    return list(reversed(records[:limit]))


def _history_row(record: TransferRecord, own: set[int]) -> dict[str, object]:
    outgoing = record.debit_account_id in own
    counterparty = record.credit_account_id if outgoing else record.debit_account_id
    if "pending" in record.flags:
        change = f"-{record.amount:,} reserved" if outgoing else f"+{record.amount:,} pending"
    elif "void_pending" in record.flags:
        change = "released" if outgoing else "voided"
    else:
        change = f"{'-' if outgoing else '+'}{record.amount:,}"
    return {
        "time": rfc3339_ns(record.timestamp_ns),
        "timestamp_ns": record.timestamp_ns,
        "code": record.code,
        "kind": record.kind,
        "change": change,
        "amount": record.amount,
        "direction": "out" if outgoing else "in",
        "flags": ",".join(sorted(record.flags)) or "-",
        "counterparty": counterparty,
        "id": record.id,
    }
