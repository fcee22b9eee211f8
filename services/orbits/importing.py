"""One entry point for element-set text in any supported format: `parse_elements`.

Owns: the format names, detecting the format of unlabelled text, and the input size limit.
Does not own any format's grammar (see `tle`,
`omm`).
"""

from __future__ import annotations

from typing import Literal, get_args

from orbitq.services.orbits.elements import ParsedElements
from orbitq.services.orbits.omm import parse_omm_csv, parse_omm_json
from orbitq.services.orbits.problems import ImportProblem
from orbitq.services.orbits.tle import parse_tle

ElementFormat = Literal["auto", "tle", "omm-csv", "omm-json"]
ELEMENT_FORMATS: tuple[str, ...] = get_args(ElementFormat)
# The whole public catalog as 3-line TLE is about 5 MB; 64 MB leaves room for OMM JSON's
# verbosity while keeping a mistaken upload from exhausting memory.
ELEMENT_TEXT_CHARS_MAX = 64 * 1024 * 1024


def detect_element_format(text: str) -> Literal["tle", "omm-csv", "omm-json"]:
    """JSON if it starts with '[' or '{', OMM CSV if its first line names NORAD_CAT_ID, else TLE."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith(("[", "{")):
        return "omm-json"
    first_line = stripped.split("\n", 1)[0].upper()
    if "NORAD_CAT_ID" in first_line and "," in first_line:
        return "omm-csv"
    return "tle"


def parse_elements(text: str, fmt: str = "auto") -> ParsedElements:
    """Parse element sets; every bad line or record becomes an `ImportProblem`, none raises.

    `fmt` is one of auto|tle|omm-csv|omm-json (auto: see `detect_element_format`). An unknown
    `fmt` is a programming error and raises ValueError. A catalog number seen twice keeps its
    first element set and reports the later one (every parser does), so a record never silently
    replaces another.
    """
    if fmt not in ELEMENT_FORMATS:
        raise ValueError(f"unknown element format {fmt!r}; expected one of {ELEMENT_FORMATS}")
    if len(text) > ELEMENT_TEXT_CHARS_MAX:
        message = f"input of {len(text)} characters exceeds {ELEMENT_TEXT_CHARS_MAX}"
        return ParsedElements([], [ImportProblem(1, message)])
    text = text.removeprefix("\ufeff")
    chosen = detect_element_format(text) if fmt == "auto" else fmt
    if chosen == "omm-json":
        parsed = parse_omm_json(text)
    elif chosen == "omm-csv":
        parsed = parse_omm_csv(text)
    else:
        parsed = parse_tle(text)
    return parsed
