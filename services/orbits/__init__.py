"""orbitq.services.orbits: the sky the scheduler places work into.

Owns: parsing element sets (TLE, CelesTrak OMM) and ground stations, SGP4 propagation
vectorised over satellites and times, frames (TEME -> ITRF -> station topocentric), and contact
windows refined to one second. Pure computation: no database, no gRPC.
"""

from __future__ import annotations

from orbitq.services.orbits.bundled import (
    BUNDLED_EPOCH,
    BUNDLED_FILES,
    ONEWEB_BUNDLED_EPOCH,
    STARLINK_BUNDLED_EPOCH,
    STATIONS_BUNDLED_EPOCH,
    bundled_path,
    load_bundled_elements,
    load_bundled_stations,
)
from orbitq.services.orbits.contacts import (
    HORIZON_HOURS_MAX,
    ContactWindow,
    compute_contacts,
    compute_contacts_chunk,
    iter_contacts,
    satellite_chunks,
    search_times_s,
)
from orbitq.services.orbits.elements import (
    ELEMENT_AGE_WARN_DAYS,
    ElementSet,
    ParsedElements,
    stale_elements,
)
from orbitq.services.orbits.importing import ELEMENT_FORMATS, parse_elements
from orbitq.services.orbits.omm import omm_record
from orbitq.services.orbits.problems import ImportProblem
from orbitq.services.orbits.stations import (
    GroundStation,
    InvalidStationError,
    ParsedStations,
    label_problems,
    parse_stations,
)
from orbitq.services.orbits.tle import tle_checksum

__all__ = [
    "BUNDLED_EPOCH",
    "BUNDLED_FILES",
    "ELEMENT_AGE_WARN_DAYS",
    "ELEMENT_FORMATS",
    "HORIZON_HOURS_MAX",
    "ONEWEB_BUNDLED_EPOCH",
    "STARLINK_BUNDLED_EPOCH",
    "STATIONS_BUNDLED_EPOCH",
    "ContactWindow",
    "ElementSet",
    "GroundStation",
    "ImportProblem",
    "InvalidStationError",
    "ParsedElements",
    "ParsedStations",
    "bundled_path",
    "compute_contacts",
    "compute_contacts_chunk",
    "iter_contacts",
    "label_problems",
    "load_bundled_elements",
    "load_bundled_stations",
    "omm_record",
    "parse_elements",
    "parse_stations",
    "satellite_chunks",
    "search_times_s",
    "stale_elements",
    "tle_checksum",
]
