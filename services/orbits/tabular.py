"""The reading loops orbitq's input parsers share: CSV with a header row, and JSON lists of
objects.

Owns, for CSV: reading the text row by row with line numbers; skipping blank rows; taking the first
non-blank row as the header (names normalised by the caller's function); refusing a header the
caller rejects (and everything after it); reporting a row whose field count differs from the
header's, and text the csv module cannot read, as problems with their line; and saying when
there was no header at all. Each good row goes to the caller as {name: cell}, cells as written.

Owns, for JSON: decoding (any failure, including absurd nesting or numbers Python will not
convert, is a problem at its line), the list of objects and its size limit, and one problem per
item that is not an object (numbered by its position in the list).

Does not own: what a header must name or what a record means (OMM element sets, ground
stations, node capacities each check their own).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

from orbitq.services.orbits.problems import Unit


def read_csv_records(
    text: str,
    *,
    normalise: Callable[[str], str],
    check_header: Callable[[list[str]], str | None],
    on_record: Callable[[dict[str, str], int], bool],
    on_problem: Callable[[int, str], None],
    no_header: str,
) -> None:
    """Feed each record of `text` to `on_record(record, line)`, which returns False to stop.

    `check_header(names)` returns a problem (which stops the reading) or None. A document
    without a header row reports `no_header` at line 1."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [normalise(cell.strip()) for cell in row]
                wrong = check_header(header)
                if wrong is not None:
                    on_problem(reader.line_num, wrong)
                    return
            elif len(row) != len(header):
                on_problem(
                    reader.line_num, f"has {len(row)} fields but the header has {len(header)}"
                )
            elif not on_record(dict(zip(header, row, strict=True)), reader.line_num):
                return
    except csv.Error as error:
        on_problem(reader.line_num, f"not valid CSV: {error}")
    if header is None:
        on_problem(1, no_header)


def read_json_objects(
    text: str,
    *,
    noun: str,
    most: int,
    on_record: Callable[[dict[str, Any], int], None],
    on_problem: Callable[[int, str, Unit], None],
    one_object_is_a_list: bool = False,
) -> None:
    """Feed each object of the JSON list `text` to `on_record(record, position)` (1-based).

    `noun` names the list's items in messages ("stations"); more than `most` of them is one
    problem and nothing is read. With `one_object_is_a_list`, a lone object counts as a list
    of one (CelesTrak serves a single element set that way)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        on_problem(error.lineno, f"not valid JSON: {error.msg}", "line")
        return
    except (ValueError, RecursionError) as error:
        # e.g. an integer of more digits than Python converts, or absurd nesting.
        on_problem(1, f"not valid JSON: {error}", "line")
        return
    if one_object_is_a_list and isinstance(document, dict):
        document = [document]
    if not isinstance(document, list):
        on_problem(1, f"the JSON of {noun} must be a list of objects", "line")
    elif len(document) > most:
        count = len(document)
        on_problem(1, f"a list of {count} objects is more than the {most} {noun} allowed", "line")
    else:
        for position, record in enumerate(document, start=1):
            if isinstance(record, dict):
                on_record(record, position)
            else:
                on_problem(position, "is not a JSON object", "record")
