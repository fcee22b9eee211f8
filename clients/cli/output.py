"""How the CLI shows results: aligned tables for people, JSON for scripts.

Owns: formatting only (and a progress bar on stderr). Does not decide what to show.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO


def print_json(value: Any, stream: TextIO | None = None) -> None:
    """One JSON document, sorted keys, so scripts and diffs are stable."""
    out = stream or sys.stdout
    json.dump(value, out, indent=2, sort_keys=True)
    out.write("\n")


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as a left-aligned table with a header; numbers are right-aligned."""
    if not rows:
        return "(none)"
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    numeric = [all(_is_number(row.get(column)) for row in rows) for column in columns]
    widths = [
        max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)
    ]

    def render(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if is_num else value.ljust(width)
            for value, width, is_num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines = [render([column.upper() for column in columns])]
    lines.extend(render(line) for line in cells)
    return "\n".join(lines)


def print_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], stream: TextIO | None = None
) -> None:
    out = stream or sys.stdout
    out.write(format_table(rows, columns) + "\n")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


class ProgressBar:
    """A one-line progress bar on stderr for long runs: `[#####-----]  45%  450,000/1,000,000`.

    Shown only when enabled (the caller passes `--progress`, or stderr is a terminal); redrawn
    at most every `REDRAW_SECONDS`, so it costs nothing measurable however often it is told.
    """

    WIDTH = 30
    REDRAW_SECONDS = 0.1

    def __init__(self, label: str, *, enabled: bool, stream: TextIO | None = None) -> None:
        self._label = label
        self._enabled = enabled
        self._stream = stream or sys.stderr
        self._drawn_at = 0.0
        self._shown = False

    @staticmethod
    def wanted(forced: bool, stream: TextIO | None = None) -> bool:
        """--progress, or an interactive stderr."""
        out = stream or sys.stderr
        return forced or bool(getattr(out, "isatty", lambda: False)())

    def __call__(self, done: int, total: int) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if done < total and now - self._drawn_at < self.REDRAW_SECONDS:
            return
        self._drawn_at = now
        fraction = done / total if total else 1.0
        filled = int(fraction * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self._stream.write(f"\r{self._label} [{bar}] {fraction:4.0%}  {done:,}/{total:,} entries")
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        """End the line (if anything was drawn), so later output starts on its own line."""
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()
            self._shown = False
