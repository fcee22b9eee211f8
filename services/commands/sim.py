"""`orbitq sim`: a seeded day of work through a real in-process broker, written to three files.

Owns: the command's arguments, reading the element-set and station files (or the bundled
snapshots), turning bad input into one precise `CommandError`, writing `DIR/schedule.json`
(brief §9), `DIR/report.json` and the schedule's picture `DIR/schedule.png` (each replaced
whole, never left half-written), a progress bar on a terminal, and the summary a person reads.
The simulation itself is orbitq.services.sim's, and the picture orbitq.clients.cli.gantt's;
both are imported only when the command runs, so `orbitq --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from orbitq.clients.cli import progress
from orbitq.clients.cli.output import print_json, print_table
from orbitq.clients.cli.registry import CommandError, CommandTree
from orbitq.services.commands.contacts import read_elements, read_stations_text

DEFAULTS: dict[str, int | float] = {
    "nodes": 30,
    "requests": 2_000,
    "hours": 24.0,
    "seed": 1,
    "step": 60,
}


def register(tree: CommandTree) -> None:
    parser = tree.add(
        "sim",
        "simulate a seeded day of requests through an in-process broker on a simulated clock; "
        "writes DIR/schedule.json, DIR/report.json and DIR/schedule.png",
        _sim,
        json_output=True,
    )
    parser.add_argument(
        "--tle",
        default="bundled:starlink",
        metavar="FILE",
        help="element sets (TLE or CelesTrak OMM CSV/JSON), or bundled:starlink (default), "
        "bundled:oneweb",
    )
    parser.add_argument(
        "--stations",
        default="bundled:ground-stations",
        metavar="FILE",
        help="ground stations, CSV or JSON (default bundled:ground-stations)",
    )
    numbers = (
        ("--nodes", "N", "satellites with computers, a seeded sample of the file"),
        ("--requests", "M", "requests the tenants submit"),
        ("--hours", "H", "length of the simulated horizon"),
        ("--seed", "S", "the same seed and inputs give the same schedule"),
        ("--step", "SECONDS", "simulated seconds between scheduling cycles"),
    )
    for flag, metavar, text in numbers:
        default = DEFAULTS[flag.removeprefix("--")]
        parser.add_argument(
            flag,
            type=type(default),
            default=default,
            metavar=metavar,
            help=f"{text} (default {default:g})",
        )
    parser.add_argument(
        "--db", metavar="URL", help="a fresh database to run on (default: SQLite in a temp dir)"
    )
    parser.add_argument(
        "--settlement",
        choices=("receipts", "plan"),
        default="receipts",
        help="receipts (default): one in-process node agent per node runs the work and its"
        " signed usage receipt settles it; plan: placed work completes as placed, no agent",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="directory for schedule.json, report.json and schedule.png (created if needed)",
    )


def _sim(args: argparse.Namespace) -> int:
    from orbitq.services.sim import SimSettings, run_simulation

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} exists and is not a directory")
    settings = SimSettings(
        elements=tuple(read_elements(args.tle, skip_bad=False)),
        stations_text=read_stations_text(args.stations),
        nodes=args.nodes,
        requests=args.requests,
        hours=args.hours,
        seed=args.seed,
        step_seconds=args.step,
        db_url=args.db,
        settlement=args.settlement,
    )
    wrong = settings.problems()
    if wrong:
        raise CommandError("; ".join(wrong))
    news = None if args.json else _progress
    # The broker's warnings (a ticket not pulled in time, a node degraded) are counted in the
    # report; one line each would drown the progress at thousands of requests.
    logging.getLogger("orbitq").setLevel(logging.ERROR)
    with progress.bar(args, "simulating", "sim min") as simulated:
        result = run_simulation(settings, news, lambda done, of: simulated(done / 60, of / 60))
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "schedule.json", result.schedule)
    _write_json(out / "report.json", result.report)
    _plot(result.schedule, out / "schedule.png")
    if args.json:
        print_json(result.report)
    else:
        _summary(result.report, out)
    return 0


def _plot(schedule: dict[str, Any], path: Path) -> None:
    """The schedule's picture beside it (matplotlib is loaded only now)."""
    from orbitq.clients.cli.gantt import plot_schedule

    plot_schedule(schedule, path)


def _progress(line: str) -> None:
    print(f"sim: {line}", file=sys.stderr, flush=True)


def _write_json(path: Path, document: dict[str, Any]) -> None:
    """Replace `path` whole: a reader never sees half a file, a crash leaves the old one."""
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", encoding="utf-8") as file:
        json.dump(document, file, indent=1, sort_keys=False)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    partial.replace(path)


def _summary(report: dict[str, Any], out: Path) -> None:
    requests = report["requests"]
    use = report["utilisation"]
    print(
        f"{report['nodes']} nodes, {report['stations']} stations, "
        f"{report['horizon']['start']} to {report['horizon']['end']}, seed {report['seed']}: "
        f"{requests['submitted']} submitted, {requests['accepted']} accepted, "
        f"{requests['completed']} completed, {requests['rejected']} rejected"
    )
    print(
        f"utilisation: cpu {use['cpu']:.1%}, storage {use['storage']:.1%}, "
        f"link {use['link']:.1%} of contact time; wall {report['wall_seconds']:.1f} s"
    )
    agents = report.get("agents")
    if agents:
        refunds = sum(agents["refunds_by_cause"].values())
        causes = ", ".join(f"{why} {n}" for why, n in agents["refunds_by_cause"].items())
        print(
            f"agents: {agents['nodes_enrolled']} enrolled, {agents['tickets_issued']} tickets"
            f" issued, {agents['receipts_verified']} receipts verified,"
            f" {agents['settling_transfers_with_receipt_hash']} of"
            f" {agents['settling_transfers']} settling transfers carry a receipt hash;"
            f" {refunds} refunded" + (f" ({causes})" if causes else "")
        )
    if requests["rejected_by_reason"]:
        rows = [
            {"rejected": why, "requests": n} for why, n in requests["rejected_by_reason"].items()
        ]
        print_table(rows, ["rejected", "requests"])
    tokens = report["tokens"]
    print_table(
        [{"tokens": what, **tokens[what]} for what in ("reserved", "settled", "released", "held")],
        ["tokens", "cpu", "storage", "link"],
    )
    print(f"wrote {out / 'schedule.json'} and {out / 'report.json'}")
    print(f"drew {out / 'schedule.png'}")
