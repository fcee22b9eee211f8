"""`orbitq schedule plot`: the schedule as a Gantt chart PNG, from a schedule document file
(`orbitq schedule export`, `orbitq sim`) or from a running broker.

Owns: the command's arguments, reading the document, and the `--size WxH` flag that every
picture command shares (`size_flag`). Does not own: drawing (gantt.py, imported when the
command runs, so `orbitq --help` never loads matplotlib) or the document's assembly
(orbitq.clients.schedule).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from orbitq.clients.cli.connect import client_from, instant, positive
from orbitq.clients.cli.registry import CommandError, CommandTree

WIDTH_PX_MIN = 400
HEIGHT_PX_MIN = 300
SIDE_PX_MAX = 8_000
SIZE_PX_DEFAULT = (1600, 1000)
DOCUMENT_BYTES_MAX = 256 * 1024 * 1024


def register(tree: CommandTree) -> None:
    tree.group("schedule", "the broker's schedule")
    parser = tree.add(
        "schedule plot",
        "draw a schedule as a Gantt chart PNG: a row per node (runs, uplinks and downlinks "
        "coloured by tenant over its contacts) and each station's antennas in use",
        _plot,
        connects=True,
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="the PNG to write")
    parser.add_argument(
        "--from",
        dest="source",
        metavar="FILE",
        help="a schedule document (schedule.json of `orbitq sim` or `orbitq schedule export`); "
        "without it the broker's schedule is read (use an operator key)",
    )
    parser.add_argument(
        "--nodes",
        type=positive,
        default=30,
        metavar="N",
        help="show the N busiest nodes (default 30, at most 200)",
    )
    parser.add_argument("--start", type=instant, help="from this RFC 3339 time (default: horizon)")
    parser.add_argument("--end", type=instant, help="until this RFC 3339 time (default: horizon)")
    size_flag(parser, SIZE_PX_DEFAULT)


def parse_size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT in pixels, e.g. 1600x1000 (an argparse type)."""
    width, cross, height = text.lower().partition("x")
    if not cross or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT in pixels, e.g. 1600x1000")
    size = int(width), int(height)
    if not (WIDTH_PX_MIN <= size[0] <= SIDE_PX_MAX and HEIGHT_PX_MIN <= size[1] <= SIDE_PX_MAX):
        raise argparse.ArgumentTypeError(
            f"{text!r}: the width must be {WIDTH_PX_MIN}..{SIDE_PX_MAX} and the height "
            f"{HEIGHT_PX_MIN}..{SIDE_PX_MAX} pixels"
        )
    return size


def size_flag(parser: argparse.ArgumentParser, default: tuple[int, int]) -> None:
    parser.add_argument(
        "--size",
        type=parse_size,
        default=default,
        metavar="WxH",
        help=f"the picture's size in pixels (default {default[0]}x{default[1]})",
    )


def _plot(args: argparse.Namespace) -> int:
    from orbitq.clients.cli.gantt import plot_schedule

    document = _document(args)
    out = Path(args.out)
    try:
        view = plot_schedule(
            document,
            out,
            nodes_max=args.nodes,
            start=args.start,
            end=args.end,
            size_px=args.size,
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    except OSError as error:
        raise CommandError(f"cannot write {out}: {error.strerror or error}") from None
    print(
        f"wrote {out}: {len(view.nodes)} node(s), {view.placed:,} placement(s), "
        f"{len(view.tenants)} tenant(s), {len(view.stations)} station(s) in use"
    )
    return 0


def _document(args: argparse.Namespace) -> dict[str, Any]:
    if args.source is None:
        from orbitq.clients.schedule import fetch_schedule

        with client_from(args) as client:
            try:
                return fetch_schedule(client, args.start, args.end)
            except ValueError as error:
                raise CommandError(str(error)) from None
    path = Path(args.source)
    try:
        if path.stat().st_size > DOCUMENT_BYTES_MAX:
            raise CommandError(f"--from {path} is larger than {DOCUMENT_BYTES_MAX:,} bytes")
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CommandError(f"cannot read --from {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CommandError(f"--from {path} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise CommandError(f"--from {path} is not a schedule document (brief §9)")
    return document
