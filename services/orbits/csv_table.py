"""The loop every CSV input of orbitq shares: a header row, then one record per row.

Owns: reading CSV text row by row with line numbers; skipping blank rows; taking the first
non-blank row as the header (names normalised by the caller's function); refusing a header the
caller rejects (and everything after it); reporting a row whose field count differs from the
header's, and text the csv module cannot read, as problems with their line; and saying when
there was no header at all. Each good row goes to the caller as {name: cell}, cells as written.

Does not own: what a header must name or what a record means (OMM element sets, ground
stations, node capacities each check their own).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable


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
