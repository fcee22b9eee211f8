"""How the demo speaks: numbered chapters, wrapped paragraphs, indented tables."""

from __future__ import annotations

import textwrap

from orbitq.clients.cli.output import format_table

WIDTH = 96


class Narrator:
    def __init__(self) -> None:
        self._chapter = 0

    def chapter(self, title: str) -> None:
        self._chapter += 1
        heading = f" {self._chapter}. {title} "
        print()
        print(heading)
        print("─" * len(heading))

    def say(self, text: str) -> None:
        print(textwrap.fill(text, width=WIDTH, break_on_hyphens=False, break_long_words=False))

    def table(self, rows: list[dict[str, object]], columns: list[str]) -> None:
        print(textwrap.indent(format_table(rows, columns), "  "))

    def block(self, text: str) -> None:
        print(textwrap.indent(text.rstrip("\n"), "    "))
