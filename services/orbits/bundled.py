"""The real orbital data shipped inside the package (see data/README.md for sources).

Owns: the names of the bundled files, the epoch each snapshot should be propagated from, and
loading them through importlib.resources (so it works from a wheel as well as a checkout).
Does not own: parsing (see `importing`, `stations`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files
from importlib.resources.abc import Traversable
from types import MappingProxyType

from orbitq.services.orbits.elements import ElementSet
from orbitq.services.orbits.importing import parse_elements
from orbitq.services.orbits.stations import GroundStation, parse_stations

_PACKAGE = "orbitq.services.orbits.data"

BUNDLED_FILES = MappingProxyType(
    {
        "starlink": "starlink-2025-12-06.tle",
        "oneweb": "oneweb-2025-12-22.tle",
        "stations": "stations-2024-11-11.tle",
        "ground-stations": "ground-stations.csv",
    }
)
ELEMENT_SETS = ("starlink", "oneweb", "stations")

# Start simulations here: each snapshot's element sets cluster around this day, and SGP4 error
# grows by kilometres per day away from epoch.
STARLINK_BUNDLED_EPOCH = datetime(2025, 12, 6, tzinfo=UTC)
ONEWEB_BUNDLED_EPOCH = datetime(2025, 12, 22, tzinfo=UTC)
STATIONS_BUNDLED_EPOCH = datetime(2024, 11, 11, tzinfo=UTC)
BUNDLED_EPOCH = MappingProxyType(
    {
        "starlink": STARLINK_BUNDLED_EPOCH,
        "oneweb": ONEWEB_BUNDLED_EPOCH,
        "stations": STATIONS_BUNDLED_EPOCH,
    }
)


def bundled_path(name: str) -> Traversable:
    """The bundled file called `name`: a short name (starlink, oneweb, stations,
    ground-stations) or the file name itself. Raises KeyError naming the choices."""
    filename = BUNDLED_FILES.get(name, name)
    if filename not in BUNDLED_FILES.values():
        raise KeyError(f"no bundled file {name!r}; choose one of {', '.join(BUNDLED_FILES)}")
    return files(_PACKAGE).joinpath(filename)


def load_bundled_elements(name: str) -> list[ElementSet]:
    """All element sets of a bundled TLE file (starlink, oneweb or stations)."""
    if BUNDLED_FILES.get(name, name) not in (BUNDLED_FILES[n] for n in ELEMENT_SETS):
        raise KeyError(f"{name!r} is not a bundled element-set file; choose {ELEMENT_SETS}")
    parsed = parse_elements(bundled_path(name).read_text(encoding="ascii"))
    # The bundled files are known good: a problem here means the package is damaged.
    assert not parsed.problems, f"bundled {name} has problems: {parsed.problems[:3]}"
    return parsed.elements


def load_bundled_stations() -> list[GroundStation]:
    """The 28 bundled ground stations, in file order."""
    parsed = parse_stations(bundled_path("ground-stations").read_text(encoding="utf-8"))
    assert not parsed.problems, f"bundled stations have problems: {parsed.problems[:3]}"
    return parsed.stations
