"""The sky as a picture: a node's ground track over a world map, with the ground stations, their
visibility circles and the node's contacts.

Owns: `Sky` (everything one picture shows, already computed: the track, the stations and their
footprints, the contacts, the land outlines) and `plot_sky`, which draws it on an
equirectangular map (longitude across, latitude up, a 30-degree graticule) and writes a PNG.
Does not own: the orbital computation (orbitq.services.orbits.groundtrack, called by the
`contacts plot` command) or the canvas (pictures.py). No map data is downloaded: the land is
the outline list the caller passes (the package bundles Natural Earth's 1:110m).

Lines that cross the antimeridian are cut there, so a track or a circle never streaks across the
map. A contact is drawn over the track in the contact colour, and the stations the node talks
to are drawn and named in it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D

from orbitq.clients.cli.pictures import new_figure, save_png

FloatArray = npt.NDArray[np.float64]

SIZE_PX_DEFAULT = (1600, 900)
OCEAN_COLOUR = "#eaf2fb"
LAND_COLOUR = "#d4d4c8"
TRACK_COLOUR = "#1f5fa8"
CONTACT_COLOUR = "#e8590c"
STATION_COLOUR = "#444444"
GRATICULE_DEGREES = 30


@dataclass(frozen=True)
class SkyStation:
    id: str
    latitude_deg: float
    longitude_deg: float
    # (latitudes, longitudes) of its visibility circle for the node's altitude
    footprint: tuple[FloatArray, FloatArray]


@dataclass(frozen=True)
class SkyContact:
    station: str
    # seconds after the track's start
    aos_s: float
    los_s: float


@dataclass(frozen=True)
class Sky:
    title: str
    seconds: FloatArray
    latitude_deg: FloatArray
    longitude_deg: FloatArray
    stations: Sequence[SkyStation]
    contacts: Sequence[SkyContact]
    # one (n, 2) array of (longitude, latitude) per ring
    land: Sequence[FloatArray]


def plot_sky(sky: Sky, out: Path, *, size_px: tuple[int, int] = SIZE_PX_DEFAULT) -> None:
    figure = new_figure(size_px)
    axes = figure.add_subplot()
    _map(axes, sky.land)
    _stations(axes, sky)
    _track(axes, sky)
    axes.set_title(sky.title)
    handles = [
        Line2D([], [], color=TRACK_COLOUR, lw=1.2, label="ground track"),
        Line2D([], [], color=CONTACT_COLOUR, lw=3, label="in contact"),
        Line2D([], [], color=STATION_COLOUR, lw=0.8, label="visibility circle"),
        Line2D([], [], color=STATION_COLOUR, marker="^", ls="", label="ground station"),
    ]
    axes.legend(handles=handles, loc="lower left", fontsize="small", framealpha=0.9)
    save_png(figure, out)


def _map(axes: Axes, land: Sequence[FloatArray]) -> None:
    axes.set_facecolor(OCEAN_COLOUR)
    # Borders vanish into the fill (edges in the land colour): only the coastline shows.
    axes.add_collection(
        PolyCollection(
            [ring for ring in land if len(ring) >= 3],
            facecolors=LAND_COLOUR,
            edgecolors=LAND_COLOUR,
            linewidths=0.3,
            zorder=1,
        )
    )
    axes.set_xlim(-180, 180)
    axes.set_ylim(-90, 90)
    axes.set_aspect("equal")
    ticks = range(-180, 181, GRATICULE_DEGREES)
    axes.set_xticks(ticks, [_degrees(t, "E", "W") for t in ticks], fontsize="small")
    lat_ticks = range(-90, 91, GRATICULE_DEGREES)
    axes.set_yticks(lat_ticks, [_degrees(t, "N", "S") for t in lat_ticks], fontsize="small")
    axes.grid(color="white", linewidth=0.8, zorder=2)
    axes.set_axisbelow(False)


def _degrees(value: int, positive: str, negative: str) -> str:
    return "0°" if value == 0 else f"{abs(value)}°{positive if value > 0 else negative}"


def _stations(axes: Axes, sky: Sky) -> None:
    in_contact = {contact.station for contact in sky.contacts}
    for station in sky.stations:
        colour = CONTACT_COLOUR if station.id in in_contact else STATION_COLOUR
        latitudes, longitudes = station.footprint
        x, y = cut_at_antimeridian(longitudes, latitudes)
        axes.plot(x, y, color=colour, linewidth=0.8, alpha=0.8, zorder=3)
        axes.plot(
            station.longitude_deg,
            station.latitude_deg,
            marker="^",
            markersize=5,
            color=colour,
            zorder=5,
        )
        if station.id in in_contact:
            axes.annotate(
                station.id,
                (station.longitude_deg, station.latitude_deg),
                textcoords="offset points",
                xytext=(5, 3),
                fontsize="x-small",
                color=CONTACT_COLOUR,
                zorder=6,
            )


def _track(axes: Axes, sky: Sky) -> None:
    x, y = cut_at_antimeridian(sky.longitude_deg, sky.latitude_deg)
    axes.plot(x, y, color=TRACK_COLOUR, linewidth=1.2, zorder=4)
    if len(sky.seconds) and np.isfinite(sky.longitude_deg[0]):
        axes.plot(sky.longitude_deg[0], sky.latitude_deg[0], "o", color=TRACK_COLOUR, zorder=6)
        axes.annotate(
            "start",
            (float(sky.longitude_deg[0]), float(sky.latitude_deg[0])),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize="small",
            color=TRACK_COLOUR,
            zorder=6,
        )
    for contact in sky.contacts:
        inside = (sky.seconds >= contact.aos_s) & (sky.seconds <= contact.los_s)
        x, y = cut_at_antimeridian(*_contact_points(sky, contact, inside))
        axes.plot(x, y, color=CONTACT_COLOUR, linewidth=3.0, solid_capstyle="round", zorder=5)


def _contact_points(
    sky: Sky, contact: SkyContact, inside: npt.NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray]:
    """The track inside the contact, with its ends interpolated at AOS and LOS (a contact
    shorter than the track's step still shows)."""
    times = np.concatenate(([contact.aos_s], sky.seconds[inside], [contact.los_s]))
    latitudes = np.interp(times, sky.seconds, sky.latitude_deg)
    # Longitudes wrap: interpolate the unwrapped angle, then wrap back.
    unwrapped = np.degrees(np.unwrap(np.radians(sky.longitude_deg)))
    longitudes = (np.interp(times, sky.seconds, unwrapped) + 180.0) % 360.0 - 180.0
    return longitudes, latitudes


def cut_at_antimeridian(
    longitudes: FloatArray, latitudes: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The same polyline with a NaN gap wherever it jumps across the +-180 meridian."""
    jumps = np.nonzero(np.abs(np.diff(longitudes)) > 180.0)[0] + 1
    return np.insert(longitudes, jumps, np.nan), np.insert(latitudes, jumps, np.nan)
