"""Progress on long work: a bar with a rate and an ETA, or a spinner with the time elapsed.

Owns: when progress is shown (`wanted`: the command's `--progress`, else only when stderr is a
terminal and the command was not asked for `--json`), and drawing it on stderr with rich: `Bar`
(called as `bar(done, total)` by the long computations: the contact search, the simulation,
the ledger audit, reading a file to upload) and `spinner` (around one RPC, whose progress the
client cannot see). Does not own what is measured.

Nothing is drawn, and rich is not even imported, when progress is not wanted: output to files,
pipes and `--json` stays byte for byte what it was. On a terminal the bar redraws in place;
when `--progress` forces it onto a file, only its final state is written, once, as one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn, TaskID

# Redraws per second: enough to look alive, few enough to cost nothing next to the work.
REFRESH_PER_SECOND = 8
BAR_WIDTH_MIN = 10
BAR_WIDTH_MAX = 40
OTHER_COLUMNS_WIDTH = 62
READ_CHUNK_BYTES = 1024 * 1024
# Width of a forced bar's one line on a file (no terminal to ask).
FILE_COLUMNS = 120


def is_terminal(stream: TextIO) -> bool:
    """An interactive terminal that can redraw a line (not TERM=dumb)."""
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


def wanted(args: argparse.Namespace, stream: TextIO | None = None) -> bool:
    """--progress forces it; --json or a stderr that is no terminal turns it off."""
    if getattr(args, "progress", False):
        return True
    if getattr(args, "json", False):
        return False
    return is_terminal(stream or sys.stderr)


class Bar:
    """`bar(done, total)`: a bar, the share done, done/total in `unit`, the rate and the ETA.

    A no-op when not `enabled`. Use it as a context manager, or call `close()`, so the line
    ends before the command's own output."""

    def __init__(
        self, label: str, unit: str, *, enabled: bool, stream: TextIO | None = None
    ) -> None:
        self._label = label
        self._unit = unit
        self._stream = stream or sys.stderr
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if enabled:
            self._progress = _progress(self._stream, unit)
            self._task = self._progress.add_task(label, total=None)
            self._progress.start()

    def __call__(self, done: float, total: float) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def bar(args: argparse.Namespace, label: str, unit: str) -> Bar:
    """A Bar shown when `wanted(args)`."""
    return Bar(label, unit, enabled=wanted(args))


def read_counted(handle: BinaryIO, limit: int, progress: Bar | None) -> bytes:
    """At most `limit` bytes of `handle`, in READ_CHUNK_BYTES pieces, told to `progress` as
    (bytes read, bytes expected: the file's size, or the limit)."""
    try:
        expected = min(limit, os.fstat(handle.fileno()).st_size)
    except (OSError, ValueError):  # no file descriptor (a pipe's size is unknown anyway)
        expected = limit
    pieces: list[bytes] = []
    read = 0
    for _ in range(limit // READ_CHUNK_BYTES + 1):
        piece = handle.read(min(READ_CHUNK_BYTES, limit - read))
        if not piece:
            break
        pieces.append(piece)
        read += len(piece)
        if progress is not None:
            progress(read, max(read, expected))
    return b"".join(pieces)


@contextmanager
def spinner(args: argparse.Namespace, label: str) -> Iterator[None]:
    """A spinner and the time elapsed while the block runs (one RPC), when `wanted(args)`."""
    if not wanted(args):
        yield
        return
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = _new_progress(
        _console(sys.stderr), SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()
    )
    progress.add_task(label, total=None)
    progress.start()
    try:
        yield
    finally:
        progress.stop()


def _progress(stream: TextIO, unit: str) -> Progress:
    from rich import filesize
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        ProgressColumn,
        Task,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column, Table
    from rich.text import Text

    console = _console(stream)
    # What the other columns take on one line; the bar gets the rest, within limits.
    width = min(BAR_WIDTH_MAX, max(BAR_WIDTH_MIN, console.width - OTHER_COLUMNS_WIDTH))

    class BracketedBar(ProgressColumn):
        """`[━━━━━━    ]`: the bar between brackets, so a log line shows where it ends."""

        def __init__(self) -> None:
            super().__init__(table_column=Column(no_wrap=True))
            self._bar = BarColumn(bar_width=width)

        def render(self, task: Task) -> Table:
            grid = Table.grid(padding=0)
            grid.add_row("[", self._bar.render(task), "]")
            return grid

    class Count(ProgressColumn):
        """done/total (the total is unknown until the work first reports)."""

        def render(self, task: Task) -> Text:
            total = "?" if task.total is None else f"{task.total:,.0f}"
            return Text(f"{task.completed:,.0f}/{total}", style="progress.download")

    class Rate(ProgressColumn):
        """Units per second over the last 30 seconds (rich's estimate), else since the start."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            if speed is None and task.completed and task.elapsed:
                # Fewer than two reports yet (or one in all): the mean rate since the start.
                speed = task.completed / task.elapsed
            if unit == "bytes":
                text = "-" if speed is None else filesize.decimal(int(speed))
                return Text(f"{text}/s", style="progress.data.speed")
            text = "-" if speed is None else f"{speed:,.0f}"
            return Text(f"{text} {unit}/s", style="progress.data.speed")

    counted = [
        DownloadColumn() if unit == "bytes" else Count(table_column=Column(no_wrap=True)),
        Rate(table_column=Column(no_wrap=True)),
    ]
    return _new_progress(
        console,
        TextColumn("{task.description}", table_column=Column(no_wrap=True)),
        BracketedBar(),
        TaskProgressColumn(),
        *counted,
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )


def _console(stream: TextIO) -> Console:
    from rich.console import Console

    terminal = is_terminal(stream)
    # The decision is ours (wanted): rich must not second-guess it from FORCE_COLOR & co.
    return Console(
        file=stream,
        force_terminal=terminal,
        width=None if terminal else FILE_COLUMNS,
        highlight=False,
    )


def _new_progress(console: Console, *columns: ProgressColumn) -> Progress:
    from rich.progress import Progress

    return Progress(
        *columns,
        console=console,
        refresh_per_second=REFRESH_PER_SECOND,
        # Our stdout stays ours (tables, JSON); only stderr lines are drawn above the bar.
        redirect_stdout=False,
        redirect_stderr=True,
    )
