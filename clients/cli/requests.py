"""`orbitq request quote|explain|submit|status|list|cancel|watch|result|receipt` and `orbitq
schedule export`.

Owns: these commands' arguments and output (a short report or a table for people, --json for
scripts; `request watch --json` prints one JSON object per transition, a line each). A spec
comes from flags, or from a TOML or JSON file (`--spec FILE`: keys as the flags, with
underscores; times as RFC 3339 strings or TOML datetimes; `node_labels` a table; `input` the
content address of a pushed input) with flags overriding the file's values. `submit --input
FILE` pushes the file first (input_mb defaults to its size, rounded up to whole MB). The file
is only read here; the broker checks the spec. `request result` writes a request's result,
checked against the result digest of its node-signed usage receipt.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from orbitq.clients import (
    BrokerClient,
    CancellationTerms,
    Eta,
    Page,
    RequestSpec,
    ServiceRequest,
    Transition,
)
from orbitq.clients.cli.connect import client_from, instant, label, rfc3339, whole_number
from orbitq.clients.cli.ledger import add_trust_flags
from orbitq.clients.cli.output import print_json, print_table
from orbitq.clients.cli.registry import CommandError, CommandTree
from orbitq.clients.cli.workload import read_limited
from orbitq.clients.models import REQUEST_STATES
from orbitq.clients.schedule import fetch_schedule, placement_json
from orbitq.ledger.errors import LedgerIntegrityError
from orbitq.ledger.note import key_id
from orbitq.ledger.receipts import open_receipt

SPEC_FILE_BYTES_MAX = 1024 * 1024
# The broker's limit on one input (PushInput).
INPUT_BYTES_MAX = 16 * 1024 * 1024
BYTES_PER_MB = 1_000_000
LIST_LIMIT_DEFAULT = 100
LIST_LIMIT_MAX = 100_000
PAGE_SIZE = 1_000
_INT_FIELDS = (
    "cpu_millicores",
    "run_seconds",
    "storage_mb",
    "input_mb",
    "output_mb",
    "priority",
)
_SPEC_KEYS = frozenset(f.name for f in fields(RequestSpec))

T = TypeVar("T")


def register(tree: CommandTree) -> None:
    tree.group("request", "service requests: quote, submit, follow and cancel workloads")
    quote = tree.add(
        "request quote",
        "what a request would cost (what submit reserves, and the least it can cost)",
        _quote,
        connects=True,
        json_output=True,
    )
    _spec_flags(quote)
    quote.add_argument(
        "--no-eta",
        dest="eta",
        action="store_false",
        help="only the cost: skip where it would fit now (a scheduling probe on the broker)",
    )
    quote.add_argument(
        "--tenant", default="", help="operators: count the shortfall against this tenant"
    )
    explain = tree.add(
        "request explain",
        "why a request is where it is, when it runs or could, and what would make it fit",
        _explain,
        connects=True,
        json_output=True,
    )
    explain.add_argument("id", metavar="ID")
    submit = tree.add(
        "request submit",
        "reserve the tokens and queue a request for scheduling",
        _submit,
        connects=True,
        json_output=True,
    )
    _spec_flags(submit)
    submit.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="the same key returns the same request instead of a second one (default: a new"
        " key, reused by the CLI's own retries)",
    )
    submit.add_argument("--tenant", default="", help="operators: submit for this tenant")
    submit.add_argument(
        "--input",
        dest="input_file",
        metavar="FILE",
        help="push this file as the request's input first (input_mb defaults to its size)",
    )
    status = tree.add(
        "request status",
        "one request: state, placement, costs, reasons",
        _status,
        connects=True,
        json_output=True,
    )
    status.add_argument("id", metavar="ID")
    listed = tree.add(
        "request list", "requests, newest first", _list, connects=True, json_output=True
    )
    listed.add_argument(
        "--state",
        dest="states",
        action="append",
        choices=REQUEST_STATES,
        default=[],
        help="only requests in this state (repeat for more)",
    )
    listed.add_argument("--tenant", default="", help="operators: only this tenant's requests")
    listed.add_argument(
        "--limit",
        type=int,
        default=LIST_LIMIT_DEFAULT,
        help=f"at most this many requests (default {LIST_LIMIT_DEFAULT})",
    )
    cancel = tree.add(
        "request cancel",
        "cancel a request that is not running yet (its reservation is released, less the fee"
        " of a placed request past its cut-off)",
        _cancel,
        connects=True,
        json_output=True,
    )
    cancel.add_argument("id", metavar="ID")
    watch = tree.add(
        "request watch",
        "print a request's transitions as they happen, until it ends",
        _watch,
        connects=True,
        json_output=True,
    )
    watch.add_argument("id", metavar="ID")
    watch.add_argument(
        "--after",
        type=int,
        default=0,
        metavar="SEQUENCE",
        help="only transitions after this sequence number (resume a watch)",
    )
    result = tree.add(
        "request result",
        "write a request's result, checked against its node-signed usage receipt",
        _result,
        connects=True,
    )
    result.add_argument("id", metavar="ID")
    result.add_argument("--out", required=True, metavar="FILE", help="where to write it")
    receipt = tree.add(
        "request receipt",
        "the usage receipt that settled a request, as the node signed it",
        _receipt,
        connects=True,
        json_output=True,
    )
    receipt.add_argument("id", metavar="ID")
    receipt.add_argument(
        "--verify",
        action="store_true",
        help="prove it: signed by the node's enrolled key, both in a verified checkpoint, and"
        " the settling transfers carrying its SHA-256 (exit 4 if the broker lies)",
    )
    add_trust_flags(receipt)
    tree.group("schedule", "the broker's schedule")
    export = tree.add(
        "schedule export",
        "write the schedule document (brief §9: nodes, stations, contacts used, requests,"
        " placements, rejections) of a running broker; use an operator key",
        _export,
        connects=True,
    )
    export.add_argument("--out", required=True, metavar="FILE", help="where to write the JSON")
    export.add_argument(
        "--start", type=instant, help="horizon start (default: the earliest not_before)"
    )
    export.add_argument("--end", type=instant, help="horizon end (default: the latest deadline)")


# -- the spec ------------------------------------------------------------------------------------


def _spec_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the request (flags override --spec)")
    group.add_argument("--spec", metavar="FILE", help="the request as TOML or JSON")
    group.add_argument("--name")
    group.add_argument(
        "--workload",
        metavar="sha256:...",
        help="what to run: the content address `orbitq workload push` printed",
    )
    for flag, what in (
        ("--cpu-millicores", "CPU while it runs, in millicores (1000 = one core)"),
        ("--run-seconds", "how long it runs"),
        ("--storage-mb", "storage held from the start until the result is down"),
        ("--input-mb", "input to uplink before the run (default 0)"),
        ("--output-mb", "result to downlink after the run (default 0)"),
        ("--priority", "0 (lowest, default) to 9"),
    ):
        group.add_argument(flag, type=whole_number, metavar="N", help=what)
    group.add_argument("--not-before", type=instant, metavar="TIME", help="RFC 3339; default now")
    group.add_argument("--deadline", type=instant, metavar="TIME", help="RFC 3339: result down by")
    for flag, dest, metavar, what in (
        (
            "--node-label",
            "node_labels",
            "KEY=VALUE",
            "the node must carry this label (repeat: all must match)",
        ),
        ("--node", "node_ids", "ID", "the node must be this one (repeat: any of them)"),
        (
            "--station-country",
            "station_countries",
            "CC",
            "uplink and downlink only via"
            " stations in this country (ISO 3166-1 alpha-2; repeat for more)",
        ),
        (
            "--station",
            "station_ids",
            "ID",
            "uplink and downlink only via this station (repeat for more)",
        ),
    ):
        group.add_argument(
            flag,
            dest=dest,
            type=label if dest == "node_labels" else str,
            action="append",
            metavar=metavar,
            help=what,
        )


def _read_spec_file(path: str) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(SPEC_FILE_BYTES_MAX + 1)
    except OSError as error:
        raise CommandError(f"cannot read spec file {path}: {error.strerror or error}") from None
    if len(data) > SPEC_FILE_BYTES_MAX:
        raise CommandError(f"spec file {path} is larger than {SPEC_FILE_BYTES_MAX:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CommandError(f"spec file {path} is not UTF-8 text (byte {error.start})") from None
    as_json = not path.endswith(".toml") and text.lstrip()[:1] in ("{", "[")
    try:
        parsed: Any = json.loads(text) if as_json else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise CommandError(f"spec file {path} is neither JSON nor TOML: {error}") from None
    if not isinstance(parsed, dict):
        raise CommandError(f"spec file {path} must hold one object (a table) of spec keys")
    unknown = sorted(set(parsed) - _SPEC_KEYS)
    if unknown:
        raise CommandError(
            f"spec file {path}: unknown key(s) {', '.join(unknown)};"
            f" known: {', '.join(sorted(_SPEC_KEYS))}"
        )
    return parsed


def _file_value(path: str, key: str, value: Any) -> Any:
    """A spec file's value in the type RequestSpec wants, or CommandError naming the key."""
    where = f"spec file {path}: {key}"
    if key in ("not_before", "deadline"):
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, str):
            try:
                return instant(value)
            except argparse.ArgumentTypeError as error:
                raise CommandError(f"{where}: {error}") from None
        raise CommandError(f"{where} must be an RFC 3339 time")
    if key in _INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CommandError(f"{where} must be a whole number >= 0")
        return value
    if key == "node_labels":
        if not isinstance(value, Mapping):
            raise CommandError(f"{where} must be a table of KEY = VALUE")
        return {str(k): str(v) for k, v in value.items()}
    if key in ("node_ids", "station_countries", "station_ids"):
        if not isinstance(value, list):
            raise CommandError(f"{where} must be a list")
        return tuple(str(item) for item in value)
    if not isinstance(value, str):
        raise CommandError(f"{where} must be text")
    return value


def spec_from(args: argparse.Namespace) -> RequestSpec:
    values: dict[str, Any] = {}
    if args.spec:
        for key, value in _read_spec_file(args.spec).items():
            values[key] = _file_value(args.spec, key, value)
    for key in ("name", "workload", *_INT_FIELDS, "not_before", "deadline"):
        given = getattr(args, key)
        if given is not None:
            values[key] = given
    if args.node_labels:
        values["node_labels"] = dict(args.node_labels)
    for key in ("node_ids", "station_countries", "station_ids"):
        given = getattr(args, key)
        if given:
            values[key] = tuple(given)
    missing = [
        flag
        for flag, key in (
            ("--deadline", "deadline"),
            ("--cpu-millicores", "cpu_millicores"),
            ("--run-seconds", "run_seconds"),
            ("--storage-mb", "storage_mb"),
        )
        if key not in values
    ]
    if missing:
        raise CommandError(f"the request needs {', '.join(missing)} (as flags or in --spec)")
    return RequestSpec(**values)


# -- output --------------------------------------------------------------------------------------


def _amounts(amounts: Any) -> dict[str, int]:
    return {"cpu": amounts.cpu, "storage": amounts.storage, "link": amounts.link}


def request_json(request: ServiceRequest) -> dict[str, Any]:
    spec = request.spec
    placement = request.placement
    return {
        "id": request.id,
        "tenant": request.tenant,
        "state": request.state,
        "sequence": request.sequence,
        "spec": {
            "name": spec.name,
            "workload": spec.workload,
            "cpu_millicores": spec.cpu_millicores,
            "run_seconds": spec.run_seconds,
            "storage_mb": spec.storage_mb,
            "input_mb": spec.input_mb,
            "output_mb": spec.output_mb,
            "not_before": rfc3339(spec.not_before),
            "deadline": rfc3339(spec.deadline),
            "priority": spec.priority,
            "node_labels": dict(spec.node_labels),
            "node_ids": list(spec.node_ids),
            "station_countries": list(spec.station_countries),
            "station_ids": list(spec.station_ids),
            "input": spec.input,
        },
        "reserved": _amounts(request.reserved),
        "settled": _amounts(request.settled),
        "placement": None if placement is None else placement_json(placement),
        "reason": request.reason,
        "placement_reasons": [
            {"plugin": r.plugin, "reason": r.reason, "nodes": r.nodes}
            for r in request.placement_reasons
        ],
        "idempotency_key": request.idempotency_key,
        "submitted_at": rfc3339(request.submitted_at),
        "updated_at": rfc3339(request.updated_at),
        "ended_at": rfc3339(request.ended_at) if request.ended_at else None,
        "receipt_digest": request.receipt_digest.hex(),
        "fault": request.fault,
        "outcome": request.outcome,
        "result": request.result,
        "result_bytes": request.result_bytes,
    }


def _print_request(request: ServiceRequest) -> None:
    spec = request.spec
    print(f"request {request.id}  tenant {request.tenant}  {request.state.upper()}")
    if spec.name or spec.workload:
        print(f"  name      {spec.name or '-'}   workload {spec.workload or '-'}")
    print(
        f"  asks      {spec.cpu_millicores:,} millicores for {spec.run_seconds:,} s,"
        f" {spec.storage_mb:,} MB; {spec.input_mb:,} MB up, {spec.output_mb:,} MB down;"
        f" priority {spec.priority}"
    )
    print(f"  window    {rfc3339(spec.not_before)} .. {rfc3339(spec.deadline)}")
    r, s = request.reserved, request.settled
    print(f"  reserved  cpu {r.cpu:,}  storage {r.storage:,}  link {r.link:,}")
    if request.state in ("completed", "failed") and (s.cpu or s.storage or s.link):
        print(f"  settled   cpu {s.cpu:,}  storage {s.storage:,}  link {s.link:,}")
    if request.receipt_digest:
        print(f"  receipt   {request.receipt_digest.hex()}  outcome {request.outcome}")
    if request.result:
        print(f"  result    {request.result} ({request.result_bytes:,} bytes)")
    if request.fault:
        paid = "refunded" if request.fault == "operator" else "charged what it used"
        print(f"  fault     {request.fault} ({paid})")
    placement = request.placement
    if placement is not None:
        print(
            f"  placement node {placement.node}: runs {rfc3339(placement.start)} .."
            f" {rfc3339(placement.end)}; uplink {rfc3339(placement.uplink_at)} via"
            f" {placement.uplink_station}; result down by {rfc3339(placement.finish)}"
        )
    print(f"  reason    {request.reason}")
    for reason in request.placement_reasons:
        print(f"    {reason.plugin}: {reason.reason} ({reason.nodes:,} nodes)")


def _transition_line(transition: Transition) -> str:
    start = transition.from_state or "(new)"
    return (
        f"#{transition.sequence} {rfc3339(transition.at)} {start} -> {transition.to_state}:"
        f" {transition.reason}"
    )


# -- commands ------------------------------------------------------------------------------------


def _quote(args: argparse.Namespace) -> int:
    spec = spec_from(args)
    with client_from(args) as client:
        quote = client.quote(spec, eta=args.eta, tenant=args.tenant)
    if args.json:
        print_json(
            {
                "cost": _amounts(quote.cost),
                "minimum": _amounts(quote.minimum),
                "explanation": quote.explanation,
                "eta": eta_json(quote.eta) if quote.eta is not None else None,
                "terms": terms_json(quote.terms) if quote.terms is not None else None,
            }
        )
        return 0
    c, m = quote.cost, quote.minimum
    print(f"reserves  cpu {c.cpu:,}  storage {c.storage:,}  link {c.link:,}")
    print(f"at least  cpu {m.cpu:,}  storage {m.storage:,}  link {m.link:,}")
    print(quote.explanation)
    if quote.eta is not None:
        _print_eta(quote.eta)
    if quote.terms is not None:
        print(f"cancel    {quote.terms.summary}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        explanation = client.explain_request(args.id)
    request, eta = explanation.request, explanation.eta
    if args.json:
        print_json(
            {
                "id": request.id,
                "tenant": request.tenant,
                "state": request.state,
                "reason": request.reason,
                "deadline": rfc3339(request.spec.deadline),
                "eta": eta_json(eta),
                "terms": terms_json(explanation.terms),
            }
        )
        return 0
    print(f"request {request.id} ({request.tenant}) is {request.state}: {request.reason}")
    _print_eta(eta)
    print(f"cancel    {explanation.terms.summary}")
    return 0


def eta_json(eta: Eta) -> dict[str, Any]:
    return {
        "fits": eta.fits,
        "planned": eta.planned,
        "placement": None if eta.placement is None else placement_json(eta.placement),
        "reasons": [
            {"plugin": r.plugin, "reason": r.reason, "nodes": r.nodes} for r in eta.reasons
        ],
        "summary": eta.summary,
        "later_deadline_seconds": (
            int(eta.later_deadline.total_seconds()) if eta.later_deadline is not None else None
        ),
        "deadline_searched_seconds": int(eta.deadline_searched.total_seconds()),
        "allow_stations": list(eta.allow_stations),
        "short": _amounts(eta.short),
        "advice": eta.advice,
        "nodes": eta.nodes,
        "contacts": eta.contacts,
        "placements": eta.placements,
        "probes": eta.probes,
        "truncated": eta.truncated,
        "computed_at": rfc3339(eta.computed_at),
    }


def terms_json(terms: CancellationTerms) -> dict[str, Any]:
    return {
        "cutoff": rfc3339(terms.cutoff) if terms.cutoff is not None else None,
        "cutoff_seconds": terms.cutoff_seconds,
        "fee_percent": terms.fee_percent,
        "fee": _amounts(terms.fee),
        "due_now": _amounts(terms.due_now),
        "summary": terms.summary,
    }


def _print_eta(eta: Eta) -> None:
    placement = eta.placement
    if placement is not None:
        what = "planned" if eta.planned else "earliest"
        rows = [
            {
                "step": "uplink",
                "start": rfc3339(placement.uplink_at),
                "end": rfc3339(placement.uplink_end),
                "where": f"{placement.uplink_station} (contact {placement.uplink_contact})",
            },
            {
                "step": "run",
                "start": rfc3339(placement.start),
                "end": rfc3339(placement.end),
                "where": f"node {placement.node}",
            },
        ]
        rows += [
            {
                "step": "downlink",
                "start": rfc3339(segment.start),
                "end": rfc3339(segment.end),
                "where": f"{segment.station} (contact {segment.contact})",
            }
            for segment in placement.downlink
        ]
        print(f"{what} ({'stored placement' if eta.planned else 'computed now'}):")
        print_table(rows, ["step", "start", "end", "where"])
    if eta.reasons:
        print_table(
            [{"plugin": r.plugin, "reason": r.reason, "nodes": r.nodes} for r in eta.reasons],
            ["plugin", "reason", "nodes"],
        )
    print(f"eta       {eta.advice}")
    if not eta.planned:
        cut = "; contacts or placements cut at the broker's bounds" if eta.truncated else ""
        print(
            f"          (computed on {eta.nodes:,} nodes, {eta.contacts:,} contacts,"
            f" {eta.placements:,} placements, {eta.probes} probes{cut}; a later submission"
            " can take the slot)"
        )


def _submit(args: argparse.Namespace) -> int:
    spec = spec_from(args)
    with client_from(args) as client:
        if args.input_file:
            data = read_limited(args.input_file, INPUT_BYTES_MAX, "input")
            pushed = client.push_input(data, tenant=args.tenant)
            input_mb = spec.input_mb or -(-len(data) // BYTES_PER_MB)
            spec = dataclasses.replace(spec, input=pushed.digest, input_mb=input_mb)
        submitted = client.submit(spec, idempotency_key=args.idempotency_key, tenant=args.tenant)
    if args.json:
        print_json({"created": submitted.created, "request": request_json(submitted.request)})
        return 0
    if not submitted.created:
        print("(this idempotency key was used before: the request it created)")
    _print_request(submitted.request)
    return 0


def _result(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        data = client.fetch_result(args.id)
    target = Path(args.out)
    temporary = target.with_name(f".{target.name}.part")
    try:
        temporary.write_bytes(data)
        temporary.replace(target)
    except OSError as error:
        raise CommandError(f"cannot write {args.out}: {error.strerror or error}") from None
    digest = hashlib.sha256(data).hexdigest()
    print(f"wrote {len(data):,} bytes to {args.out} (sha256:{digest}, as the receipt says)")
    return 0


def _receipt(args: argparse.Namespace) -> int:
    if args.verify:
        return _verified_receipt(args)
    with client_from(args) as client:
        evidence = client.get_evidence(args.id)
    request = evidence.request
    if not evidence.receipt:
        raise CommandError(f"request {request.id} has no usage receipt yet ({request.state})")
    node = request.placement.node if request.placement else ""
    try:
        receipt = open_receipt(
            evidence.receipt, evidence.node_public_key, key_id(node, evidence.node_public_key)
        )
    except LedgerIntegrityError as error:
        raise CommandError(f"request {request.id}'s receipt does not verify: {error}") from None
    facts = {
        "request": request.id,
        "node": receipt.node,
        "digest": hashlib.sha256(evidence.receipt).hexdigest(),
        "outcome": receipt.outcome.label,
        "exit_code": receipt.exit_code,
        "fuel": receipt.fuel,
        "cpu_core_seconds": receipt.cpu_core_seconds,
        "storage_mb_seconds": receipt.storage_mb_seconds,
        "bytes_downlinked": receipt.bytes_downlinked,
        "link_seconds": receipt.link_seconds,
        "uplink_seconds": receipt.uplink_seconds,
        "start": rfc3339(datetime.fromtimestamp(receipt.start, UTC)),
        "end": rfc3339(datetime.fromtimestamp(receipt.end, UTC)),
        "result": f"sha256:{receipt.result_sha256.hex()}" if receipt.result_sha256 else "",
        "result_bytes": receipt.result_bytes,
        "runtime": receipt.runtime,
        "entry_index": evidence.receipt_entry_index,
        "node_key_entry_index": evidence.node_key_entry_index,
        "envelope": evidence.receipt.hex(),
    }
    if args.json:
        print_json(facts)
        return 0
    for key, value in facts.items():
        if key != "envelope":
            print(f"{key:<20} {value}")
    return 0


def _verified_receipt(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        verified = client.verify_receipt(args.id)
    facts = {
        "request": verified.request_id,
        "node": verified.node,
        "digest": verified.digest.hex(),
        "outcome": verified.outcome,
        "fuel": verified.fuel,
        "cpu_core_seconds": verified.cpu_core_seconds,
        "charge": _amounts(verified.charge),
        "settled": _amounts(verified.settled),
        "result": f"sha256:{verified.result_sha256.hex()}" if verified.result_sha256 else "",
        "node_key_entry": verified.node_key_entry,
        "receipt_entry": verified.receipt_entry,
        "checkpoint_size": verified.checkpoint.size,
        "verified": True,
    }
    if args.json:
        print_json(facts)
        return 0
    print(
        f"receipt {facts['digest']} of request {verified.request_id} verified: signed by node"
        f" {verified.node}'s enrolled key (entry {verified.node_key_entry}), recorded at entry"
        f" {verified.receipt_entry}, both in checkpoint {verified.checkpoint.size};"
        f" {len(verified.settlements)} settling transfers carry its SHA-256"
    )
    s = verified.settled
    print(
        f"  outcome {verified.outcome}; settled cpu {s.cpu:,} storage {s.storage:,} link {s.link:,}"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        request = client.get_request(args.id)
    if args.json:
        print_json(request_json(request))
    else:
        _print_request(request)
    return 0


def _pages(fetch: Callable[[str], Page[T]], limit: int) -> tuple[list[T], bool]:
    items: list[T] = []
    token = ""
    while True:
        page = fetch(token)
        items.extend(page.items)
        token = page.next_page_token
        if len(items) >= limit:
            return items[:limit], bool(token) or len(items) > limit
        if not token:
            return items, False


def _list(args: argparse.Namespace) -> int:
    if not 0 < args.limit <= LIST_LIMIT_MAX:
        raise CommandError(f"--limit must be between 1 and {LIST_LIMIT_MAX:,}")

    def fetch(client: BrokerClient, token: str) -> Page[ServiceRequest]:
        return client.list_requests(
            states=args.states,
            tenant=args.tenant,
            page_size=min(PAGE_SIZE, args.limit),
            page_token=token,
        )

    with client_from(args) as client:
        requests, more = _pages(lambda token: fetch(client, token), args.limit)
    if args.json:
        print_json({"requests": [request_json(r) for r in requests]})
    else:
        rows = [
            {
                "id": r.id,
                "tenant": r.tenant,
                "name": r.spec.name or "-",
                "state": r.state,
                "priority": r.spec.priority,
                "deadline": rfc3339(r.spec.deadline),
                "node": r.placement.node if r.placement else "-",
                "reason": r.reason if len(r.reason) <= 60 else r.reason[:57] + "...",
            }
            for r in requests
        ]
        columns = ["id", "tenant", "name", "state", "priority", "deadline", "node", "reason"]
        print_table(rows, columns)
    if more:
        print(f"orbitq: showing the first {len(requests):,}; raise --limit", file=sys.stderr)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        cancelled = client.cancel(args.id)
    request, charged = cancelled.request, cancelled.charged
    if args.json:
        answer = request_json(request)
        answer["charged"] = _amounts(charged)
        answer["terms"] = terms_json(cancelled.terms)
        print_json(answer)
        return 0
    print(f"request {request.id} is {request.state}: {request.reason}")
    if charged.cpu or charged.storage or charged.link:
        print(
            f"charged   cpu {charged.cpu:,}  storage {charged.storage:,}  link {charged.link:,}"
            f" (cancelled after its cut-off; the rest of its reservation is released)"
        )
    else:
        print("charged   nothing (the whole reservation is released)")
    return 0


def _watch(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        for transition in client.watch_request(args.id, args.after):
            if args.json:
                line = {
                    "sequence": transition.sequence,
                    "from": transition.from_state or None,
                    "to": transition.to_state,
                    "at": rfc3339(transition.at),
                    "reason": transition.reason,
                    "request": request_json(transition.request),
                }
                print(json.dumps(line, sort_keys=True), flush=True)
            else:
                print(_transition_line(transition), flush=True)
    return 0


def _export(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        try:
            document = fetch_schedule(client, args.start, args.end)
        except ValueError as error:
            raise CommandError(str(error)) from None
    out = Path(args.out)
    try:
        out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot write {out}: {error.strerror or error}") from None
    print(
        f"wrote {out}: {len(document['requests'])} requests, {len(document['placements'])}"
        f" placements, {len(document['rejected'])} rejected, {len(document['contacts'])}"
        f" contacts, {document['horizon']['start']} .. {document['horizon']['end']}"
    )
    return 0


# --- `orbitq request audit ID`: re-run a receipt on the ground (registered by
# orbitq.clients.cli.agent, which owns this block) ------------------------------------------

AUDIT_BLOB_BYTES_MAX = 16 * 1024 * 1024
AUDIT_CHUNK_BYTES = 4 * 1024 * 1024


def register_audit(tree: CommandTree) -> None:
    audit = tree.add(
        "request audit",
        "re-run a request's receipt in the sandbox: same fuel, outcome and result digest?",
        _audit,
        connects=True,
        json_output=True,
    )
    audit.add_argument("id", metavar="ID")
    audit.add_argument(
        "--work-dir", type=Path, help="where to re-run (default: a temporary directory)"
    )


def _audit(args: argparse.Namespace) -> int:
    import tempfile

    from orbitq.clients._sync_transport import Transport
    from orbitq.clients._transport import TLSConfig, resolve_settings
    from orbitq.clients.agent.audit import AuditRefusedError, audit
    from orbitq.clients.cli.registry import EXIT_INTEGRITY
    from orbitq.ledger.note import parse_verifier_key
    from orbitq.ledger.tickets import open_ticket
    from orbitq.v1 import ledger_pb2, request_pb2

    tls = TLSConfig.from_ca_file(args.tls_ca) if args.tls_ca else None
    transport = Transport(resolve_settings(args.target, args.api_key, args.timeout, tls, None))
    try:
        evidence = transport.unary(
            "request", "GetEvidence", request_pb2.GetEvidenceRequest(id=args.id), idempotent=True
        )
        if not evidence.receipt:
            raise CommandError(f"request {args.id} has no usage receipt yet")
        public = transport.unary(
            "ledger", "GetPublicKey", ledger_pb2.GetPublicKeyRequest(), idempotent=True
        )
        ticket_key = parse_verifier_key(public.ticket_verifier_key)
        key = (ticket_key.public_key_raw, ticket_key.key_id)
        ticket = open_ticket(bytes(evidence.ticket), *key)
        module = _blob(transport, ticket.workload_sha256)
        data = None if ticket.input_sha256 is None else _blob(transport, ticket.input_sha256)
    finally:
        transport.close()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="orbitq-audit-"))
    try:
        result = audit(
            ticket_envelope=bytes(evidence.ticket),
            receipt_envelope=bytes(evidence.receipt),
            ticket_key=key,
            node_public_key=bytes(evidence.node_public_key),
            module=module,
            input_bytes=data,
            work_dir=work_dir,
        )
    except AuditRefusedError as error:
        raise CommandError(f"cannot audit request {args.id}: {error}") from None
    digest = "none" if result.result_sha256 is None else f"sha256:{result.result_sha256.hex()}"
    if args.json:
        print_json(
            {
                "id": args.id,
                "reproduced": result.reproduced,
                "outcome": result.outcome.label,
                "fuel": result.fuel,
                "result": digest,
                "runtime": result.receipt.runtime,
                "differences": result.differences,
            }
        )
    elif result.reproduced:
        print(
            f"reproduced: request {args.id} on node {result.ticket.node}:"
            f" {result.outcome.label}, fuel {result.fuel:,}, result {digest}"
            f" ({result.receipt.runtime})"
        )
    else:
        print(f"NOT reproduced: request {args.id}")
        for line in result.differences:
            print(f"  {line}")
    return 0 if result.reproduced else EXIT_INTEGRITY


def _blob(transport: Any, sha256: bytes) -> bytes:
    """A blob by digest through GetBlob, in chunks; checked against its digest."""
    import hashlib

    from orbitq.v1 import request_pb2

    digest = f"sha256:{sha256.hex()}"
    chunks: list[bytes] = []
    offset, total = 0, None
    while total is None or offset < total:
        response = transport.unary(
            "request",
            "GetBlob",
            request_pb2.GetBlobRequest(digest=digest, offset=offset, max_bytes=AUDIT_CHUNK_BYTES),
            idempotent=True,
        )
        total = int(response.total_bytes)
        if total > AUDIT_BLOB_BYTES_MAX or (not response.data and offset < total):
            raise CommandError(f"blob {digest}: the broker sent a bad piece at {offset}")
        chunks.append(bytes(response.data))
        offset += len(response.data)
    blob = b"".join(chunks)
    if hashlib.sha256(blob).digest() != sha256:
        raise CommandError(f"blob {digest}: the bytes the broker sent do not match the digest")
    return blob
