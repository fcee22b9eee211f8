"""What an import reports about input it could not accept.

Owns: `ImportProblem`, the one shape every parser in this package (element sets, ground
stations) uses to say which line or record is wrong and why. Does not own parsing itself, nor the
decision to import nothing or only the good records: that belongs to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Text formats (TLE, CSV) report physical 1-based line numbers of the input; JSON reports the
# 1-based position of the record in its list, because a JSON document's layout is arbitrary.
Unit = Literal["line", "record"]


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """One thing wrong with the input: where (`line`, 1-based) and what to do about it."""

    line: int
    message: str
    unit: Unit = "line"

    def __str__(self) -> str:
        return f"{self.unit} {self.line}: {self.message}"
