"""`orbitq node import|list|state|enroll`, `orbitq station add|import|list`,
`orbitq contacts list|import`.

Owns: these commands' arguments and output (tables for people, --json for scripts). Files are
only read here, never parsed: element sets, capacities and station lists go to the broker as
text, and the broker parses them with orbitq.services.orbits (the client never imports the
server's code), so the CLI and the API accept exactly the same input and report the same
problems with the same line numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from orbitq.clients import (
    BrokerClient,
    Contact,
    ContactPlanReport,
    ImportReport,
    Node,
    Page,
    Station,
)
from orbitq.clients.cli import progress
from orbitq.clients.cli.connect import (
    client_from,
    instant,
    label,
    positive,
    rfc3339,
    rfc3339_rounded,
)
from orbitq.clients.cli.output import print_json, print_table
from orbitq.clients.cli.registry import CommandError, CommandTree

# What the broker accepts per call (it checks too; this fails before sending 30 MB).
FILE_BYTES_MAX = 16 * 1024 * 1024
ELEMENT_FORMATS = ("auto", "tle", "omm-csv", "omm-json")
NODE_STATES = ("ready", "degraded", "down")
CONTACTS_LIMIT_DEFAULT = 1_000
CONTACTS_LIMIT_MAX = 1_000_000
PAGE_SIZE = 1_000
CONTACT_COLUMNS = ("node", "station", "aos", "los", "max_elevation_deg")

T = TypeVar("T")


def register(tree: CommandTree) -> None:
    _register_nodes(tree)
    _register_stations(tree)
    tree.group("contacts", "contact windows between satellites and ground stations")
    contacts = tree.add(
        "contacts list",
        "contact windows the broker computed, by AOS",
        _contacts_list,
        connects=True,
        json_output=True,
    )
    contacts.add_argument("--node", default="", metavar="ID", help="only this node (NORAD id)")
    contacts.add_argument("--station", default="", metavar="ID", help="only this station")
    contacts.add_argument(
        "--start", type=instant, help="only contacts still open at or after this RFC 3339 time"
    )
    contacts.add_argument("--end", type=instant, help="only contacts that begin before this time")
    contacts.add_argument(
        "--limit",
        type=int,
        default=CONTACTS_LIMIT_DEFAULT,
        help=f"at most this many contacts (default {CONTACTS_LIMIT_DEFAULT:,})",
    )

    booked = tree.add(
        "contacts import",
        "a contact plan booked from a ground network, JSON or CSV (operator): the broker"
        " schedules over the booked windows",
        _contacts_import,
        connects=True,
        json_output=True,
    )
    booked.add_argument("file", metavar="FILE", help="the plan ('-' for standard input)")
    booked.add_argument(
        "--format", choices=("auto", "json", "csv"), default="auto", help="default: detect"
    )
    booked.add_argument(
        "--mode",
        choices=("replace", "restrict"),
        default="replace",
        help="for stations the file gives no mode: replace (the booked windows are the"
        " station's contacts) or restrict (only booked time inside computed windows);"
        " default replace",
    )
    booked.add_argument(
        "--dry-run", action="store_true", help="check the plan and report; store nothing"
    )


def _register_nodes(tree: CommandTree) -> None:
    tree.group("node", "nodes: satellites with computers")
    imported = tree.add(
        "node import",
        "create or update nodes from TLE (2- or 3-line) or OMM (CSV, JSON) element sets (operator)",
        _node_import,
        connects=True,
        json_output=True,
    )
    imported.add_argument("file", metavar="FILE", help="element sets ('-' for standard input)")
    imported.add_argument(
        "--format", choices=ELEMENT_FORMATS, default="auto", help="default: detect"
    )
    for flag, what in (
        ("--cpu-millicores", "CPU of each node in millicores"),
        ("--storage-mb", "storage of each node in MB"),
        ("--downlink-mbps", "downlink rate of each node in Mbit/s"),
        ("--uplink-mbps", "uplink rate of each node in Mbit/s"),
    ):
        imported.add_argument(
            flag,
            type=positive,
            default=0,
            metavar="N",
            help=f"{what} (default: the broker's for new nodes; existing nodes keep theirs)",
        )
    _label_flag(imported, "a label for every imported node (repeat for more)")
    imported.add_argument(
        "--capacities",
        metavar="FILE",
        help="per-node capacities: CSV norad_id,cpu_millicores,storage_mb,downlink_mbps,"
        "uplink_mbps (beats the flags for the nodes it names)",
    )
    imported.add_argument(
        "--skip-bad",
        action="store_true",
        help="import the good element sets when some are bad (the bad ones are listed)",
    )
    listed = tree.add(
        "node list", "nodes, by NORAD id", _node_list, connects=True, json_output=True
    )
    _label_flag(listed, "only nodes with this label (repeat: all must match)")
    listed.add_argument("--state", choices=NODE_STATES, help="only nodes in this state")
    state = tree.add(
        "node state",
        "set a node's state (operator): degraded keeps its work and takes no new, down takes none",
        _node_state,
        connects=True,
    )
    state.add_argument("id", metavar="ID", help="the node's id (its NORAD catalog number)")
    state.add_argument("state", metavar="STATE", choices=NODE_STATES, help="ready|degraded|down")
    enroll = tree.add(
        "node enroll",
        "make a one-time enrollment token for the node's agent (operator; `orbitq agent init"
        " --token` uses it); a newer token replaces it",
        _node_enroll,
        connects=True,
        json_output=True,
    )
    enroll.add_argument("id", metavar="NODE", help="the node's id (its NORAD catalog number)")
    enroll.add_argument(
        "--ground-link",
        choices=("contacts", "always"),
        default="contacts",
        help="contacts: the agent may call only inside the node's contact windows (a"
        " satellite, the default); always: at any time (a ground stand-in)",
    )
    enroll.add_argument(
        "--ttl",
        type=int,
        default=0,
        metavar="SECONDS",
        help="how long the token is valid (60..86400; default 3600)",
    )


def _register_stations(tree: CommandTree) -> None:
    tree.group("station", "ground stations")
    add = tree.add(
        "station add", "create or replace a ground station (operator)", _station_add, connects=True
    )
    add.add_argument("id", metavar="ID", help="1-63 characters of a-z 0-9 . _ -")
    add.add_argument("--name", required=True)
    add.add_argument("--lat", type=float, required=True, help="latitude, degrees north (WGS-84)")
    add.add_argument("--lon", type=float, required=True, help="longitude, degrees east")
    add.add_argument("--altitude-m", type=float, default=0.0, help="metres above the ellipsoid")
    add.add_argument(
        "--min-elevation-deg", type=float, default=10.0, help="lowest usable elevation (default 10)"
    )
    add.add_argument(
        "--antennas", type=int, default=1, help="satellites it can talk to at once (default 1)"
    )
    _label_flag(add, "a label, e.g. country=NO or operator=KSAT (repeat for more)")
    add.add_argument("--downlink-mbps", type=float, default=0.0, help="default: the broker's (200)")
    add.add_argument("--uplink-mbps", type=float, default=0.0, help="default: the broker's (10)")
    imported = tree.add(
        "station import",
        "create or replace every station of a CSV or JSON list, or none if any is bad (operator)",
        _station_import,
        connects=True,
    )
    imported.add_argument("file", metavar="FILE", help="CSV or JSON ('-' for standard input)")
    tree.add(
        "station list", "ground stations, by id", _station_list, connects=True, json_output=True
    )


# -- argument types ------------------------------------------------------------------------------


def _label_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--label",
        dest="labels",
        type=label,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=help_text,
    )


def _read(path: str, what: str, reading: progress.Bar | None = None) -> str:
    """The text of `path` ('-': standard input), at most FILE_BYTES_MAX bytes."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(FILE_BYTES_MAX + 1)
        else:
            with Path(path).open("rb") as handle:
                data = progress.read_counted(handle, FILE_BYTES_MAX + 1, reading)
    except OSError as error:
        raise CommandError(f"cannot read {what} {path}: {error.strerror or error}") from None
    if len(data) > FILE_BYTES_MAX:
        raise CommandError(f"{what} {path} is larger than {FILE_BYTES_MAX:,} bytes; split it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CommandError(f"{what} {path} is not UTF-8 text (byte {error.start})") from None


def _all_pages(fetch: Callable[[str], Page[T]], limit: int | None = None) -> tuple[list[T], bool]:
    """Items of every page (at most `limit`), and whether more were left."""
    items: list[T] = []
    token = ""
    while True:
        page = fetch(token)
        items.extend(page.items)
        token = page.next_page_token
        if limit is not None and len(items) >= limit:
            return items[:limit], bool(token) or len(items) > limit
        if not token:
            return items, False


def _labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items())) or "-"


# -- nodes ---------------------------------------------------------------------------------------


def _node_import(args: argparse.Namespace) -> int:
    with progress.bar(args, "reading", "bytes") as reading:
        text = _read(args.file, "element-set file", reading)
    capacities = _read(args.capacities, "capacities file") if args.capacities else ""
    with client_from(args) as client, progress.spinner(args, "importing on the broker"):
        report = client.import_nodes(
            text,
            fmt=args.format,
            cpu_millicores=args.cpu_millicores,
            storage_mb=args.storage_mb,
            downlink_mbps=args.downlink_mbps,
            uplink_mbps=args.uplink_mbps,
            labels=dict(args.labels),
            skip_bad=args.skip_bad,
            capacities_csv=capacities,
        )
    if args.json:
        print_json(_report_json(report))
        return 0
    print(
        f"imported {report.created + report.updated} node(s) from {args.file}:"
        f" {report.created} created, {report.updated} updated"
    )
    if report.problems:
        print(f"skipped {len(report.problems)} bad record(s):")
        for problem in report.problems:
            print(f"  {problem}")
    for warning in report.warnings:
        print(f"orbitq: warning: {warning}", file=sys.stderr)
    if report.stale:
        shown = ", ".join(report.stale[:20]) + (" ..." if len(report.stale) > 20 else "")
        print(f"orbitq: warning: stale element sets: {shown}", file=sys.stderr)
    return 0


def _contacts_import(args: argparse.Namespace) -> int:
    with progress.bar(args, "reading", "bytes") as reading:
        text = _read(args.file, "contact plan", reading)
    with client_from(args) as client, progress.spinner(args, "checking the plan on the broker"):
        report = client.import_contact_plan(
            text, fmt=args.format, default_mode=args.mode, dry_run=args.dry_run
        )
    if args.json:
        print_json(_plan_report_json(report))
        return 0
    verb = "would import" if report.dry_run else "imported"
    print(
        f"{verb} {report.windows} booked window(s) from {args.file} for station(s)"
        f" {', '.join(report.stations)}; {report.replaced} earlier booked window(s) replaced"
    )
    for warning in report.warnings:
        print(f"orbitq: warning: {warning}", file=sys.stderr)
    if report.not_visible:
        print(
            f"orbitq: warning: the satellite is not visible during {report.not_visible}"
            " booked window(s); check the plan against the node's element set",
            file=sys.stderr,
        )
    return 0


def _plan_report_json(report: ContactPlanReport) -> dict[str, object]:
    return {
        "windows": report.windows,
        "stations": list(report.stations),
        "replaced": report.replaced,
        "warnings": list(report.warnings),
        "not_visible": report.not_visible,
        "dry_run": report.dry_run,
    }


def _report_json(report: ImportReport) -> dict[str, object]:
    return {
        "created": report.created,
        "updated": report.updated,
        "problems": [
            {"line": p.line, "unit": p.unit, "message": p.message} for p in report.problems
        ],
        "stale": list(report.stale),
        "warnings": list(report.warnings),
    }


def _node_row(node: Node) -> dict[str, object]:
    return {
        "id": node.id,
        "name": node.name,
        "state": node.state,
        "cpu_mc": node.cpu_millicores,
        "storage_mb": node.storage_mb,
        "down_mbps": node.downlink_mbps,
        "up_mbps": node.uplink_mbps,
        "epoch": rfc3339(node.epoch),
        "labels": _labels_text(node.labels),
    }


def _node_json(node: Node) -> dict[str, object]:
    return {
        "id": node.id,
        "name": node.name,
        "norad_id": node.norad_id,
        "state": node.state,
        "cpu_millicores": node.cpu_millicores,
        "storage_mb": node.storage_mb,
        "downlink_mbps": node.downlink_mbps,
        "uplink_mbps": node.uplink_mbps,
        "labels": dict(node.labels),
        "epoch": node.epoch.isoformat().replace("+00:00", "Z") if node.epoch else None,
        "tle_line1": node.tle_line1 or None,
        "tle_line2": node.tle_line2 or None,
        "omm_json": node.omm_json or None,
    }


def _node_list(args: argparse.Namespace) -> int:
    labels = dict(args.labels)
    state = args.state or ""
    with client_from(args) as client:
        nodes, _ = _all_pages(
            lambda token: client.list_nodes(
                labels=labels, state=state, page_size=PAGE_SIZE, page_token=token
            )
        )
    if args.json:
        print_json({"nodes": [_node_json(node) for node in nodes]})
    else:
        print_table(
            [_node_row(node) for node in nodes],
            [
                "id",
                "name",
                "state",
                "cpu_mc",
                "storage_mb",
                "down_mbps",
                "up_mbps",
                "epoch",
                "labels",
            ],
        )
    return 0


def _node_state(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        node = client.set_node_state(args.id, args.state)
    print(f"node {node.id} ({node.name}) is {node.state}")
    return 0


def _node_enroll(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        made = client.create_enrollment_token(
            args.id, ground_link=args.ground_link, ttl_seconds=args.ttl
        )
    if args.json:
        print_json({"node": args.id, "token": made.token, "expires_at": rfc3339(made.expires_at)})
        return 0
    print(made.token)
    print(f"(one use, for node {args.id}; expires {rfc3339(made.expires_at)})", file=sys.stderr)
    return 0


# -- stations ------------------------------------------------------------------------------------


def _station_add(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        result = client.upsert_station(
            args.id,
            name=args.name,
            latitude_deg=args.lat,
            longitude_deg=args.lon,
            altitude_m=args.altitude_m,
            min_elevation_deg=args.min_elevation_deg,
            antennas=args.antennas,
            labels=dict(args.labels),
            downlink_mbps=args.downlink_mbps,
            uplink_mbps=args.uplink_mbps,
        )
    print(f"station {result.station.id} {'created' if result.created else 'updated'}")
    return 0


def _station_import(args: argparse.Namespace) -> int:
    with progress.bar(args, "reading", "bytes") as reading:
        text = _read(args.file, "station file", reading)
    with client_from(args) as client, progress.spinner(args, "importing on the broker"):
        report = client.import_stations(text)
    print(
        f"imported {report.created + report.updated} station(s) from {args.file}:"
        f" {report.created} created, {report.updated} updated"
    )
    return 0


def _station_row(station: Station) -> dict[str, object]:
    return {
        "id": station.id,
        "name": station.name,
        "lat": station.latitude_deg,
        "lon": station.longitude_deg,
        "alt_m": station.altitude_m,
        "min_el": station.min_elevation_deg,
        "antennas": station.antennas,
        "down_mbps": station.downlink_mbps,
        "up_mbps": station.uplink_mbps,
        "labels": _labels_text(station.labels),
    }


def _station_json(station: Station) -> dict[str, object]:
    document = {f.name: getattr(station, f.name) for f in dataclasses.fields(station)}
    document["labels"] = dict(station.labels)
    return document


def _station_list(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        stations, _ = _all_pages(
            lambda token: client.list_stations(page_size=PAGE_SIZE, page_token=token)
        )
    if args.json:
        print_json({"stations": [_station_json(station) for station in stations]})
    else:
        columns = ["id", "name", "lat", "lon", "alt_m", "min_el", "antennas", "down_mbps"]
        print_table([_station_row(s) for s in stations], [*columns, "up_mbps", "labels"])
    return 0


# -- contacts ------------------------------------------------------------------------------------


def _contact_row(contact: Contact) -> dict[str, object]:
    return {
        "id": contact.id,
        "node": contact.node,
        "station": contact.station,
        "aos": rfc3339_rounded(contact.aos),
        "los": rfc3339_rounded(contact.los),
        "max_elevation_deg": round(contact.max_elevation_deg, 2),
    }


def _contacts_list(args: argparse.Namespace) -> int:
    if not 0 < args.limit <= CONTACTS_LIMIT_MAX:
        raise CommandError(f"--limit must be between 1 and {CONTACTS_LIMIT_MAX:,}")
    start: datetime | None = args.start
    end: datetime | None = args.end
    if start is not None and end is not None and end <= start:
        raise CommandError(f"--end {rfc3339(end)} is not after --start {rfc3339(start)}")

    def fetch(client: BrokerClient, token: str) -> Page[Contact]:
        size = min(PAGE_SIZE, args.limit)
        return client.list_contacts(
            args.node, args.station, start, end, page_size=size, page_token=token
        )

    with client_from(args) as client:
        contacts, more = _all_pages(lambda token: fetch(client, token), args.limit)
    rows = [_contact_row(contact) for contact in contacts]
    if args.json:
        print_json({"contacts": rows})
    else:
        print_table(rows, CONTACT_COLUMNS)
    if more:
        print(
            f"orbitq: showing the first {len(rows):,} contacts; narrow with --node, --station,"
            " --start, --end, or raise --limit",
            file=sys.stderr,
        )
    return 0
