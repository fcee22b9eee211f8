"""`orbitq contacts plot`: one node's ground track over a world map, with the ground stations,
their visibility circles and the node's contacts, written as a PNG.

Owns: the command's arguments and gathering what the picture shows, offline (`--tle` and
`--stations` files or bundled snapshots; the contacts computed here, as `contacts compute`
does) or online (the node's element set, the stations and the stored contacts read from a
broker through the SDK). The ground track needs SGP4, so this is a broker-side command even
online: the track and the circles are computed here with orbitq.services.orbits.
Does not own: drawing (orbitq.clients.cli.skymap) or parsing (orbitq.services.orbits).
Registered by `contacts.register`; matplotlib and SGP4 are imported only when it runs.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from orbitq.clients.cli.connect import client_from, instant
from orbitq.clients.cli.plots import size_flag
from orbitq.clients.cli.registry import CommandError, CommandTree

if TYPE_CHECKING:
    from orbitq.clients import BrokerClient
    from orbitq.clients.cli.skymap import Sky, SkyContact
    from orbitq.services.orbits import ContactWindow, ElementSet, GroundStation

SIZE_PX_DEFAULT = (1600, 900)
HOURS_DEFAULT = 3.0
HOURS_MAX = 24.0
PAGE_SIZE = 1_000
# Bounds on what is read from a broker: its node and station limits (100,000 and 1,000).
NODE_PAGES_MAX = 100
STATION_PAGES_MAX = 2
CONTACT_PAGES_MAX = 10


def register(tree: CommandTree) -> None:
    parser = tree.add(
        "contacts plot",
        "draw a node's ground track over a world map with the stations, their visibility "
        "circles and its contacts, as a PNG (offline with --tle, else from the broker)",
        _plot,
        connects=True,
    )
    parser.add_argument("--node", required=True, metavar="ID", help="the node (NORAD id)")
    parser.add_argument("--out", required=True, metavar="FILE", help="the PNG to write")
    parser.add_argument(
        "--tle",
        metavar="FILE",
        help="offline: element sets holding the node (TLE or OMM; or bundled:starlink, "
        "bundled:oneweb, bundled:stations); without it the broker is asked",
    )
    parser.add_argument(
        "--stations",
        metavar="FILE",
        help="offline: ground stations, CSV or JSON (default bundled:ground-stations)",
    )
    parser.add_argument(
        "--start",
        type=instant,
        help="RFC 3339 (default: offline, the element set's epoch hour; online, now)",
    )
    parser.add_argument(
        "--hours",
        type=float,
        default=HOURS_DEFAULT,
        help=f"length of the track (default {HOURS_DEFAULT:g}, at most {HOURS_MAX:g})",
    )
    size_flag(parser, SIZE_PX_DEFAULT)


def _plot(args: argparse.Namespace) -> int:
    from orbitq.clients.cli.skymap import plot_sky

    if not 0 < args.hours <= HOURS_MAX:
        raise CommandError(f"--hours must be more than 0 and at most {HOURS_MAX:g}")
    if args.tle is None and args.stations is not None:
        raise CommandError("--stations is for offline plots: give --tle too")
    if args.tle is not None:
        element, stations, start, contacts = _offline(args)
    else:
        element, stations, start, contacts = _online(args)
    sky = sky_of(element, stations, contacts, start, args.hours)
    out = Path(args.out)
    try:
        plot_sky(sky, out, size_px=args.size)
    except OSError as error:
        raise CommandError(f"cannot write {out}: {error.strerror or error}") from None
    seen = sorted({c.station for c in sky.contacts})
    print(
        f"wrote {out}: {element.name} ({element.norad_id}), {len(sky.contacts)} contact(s)"
        + (f" with {', '.join(seen)}" if seen else "")
    )
    return 0


def _offline(
    args: argparse.Namespace,
) -> tuple[ElementSet, list[GroundStation], datetime, list[ContactWindow]]:
    from orbitq.services.commands.contacts import read_elements, read_stations
    from orbitq.services.orbits import compute_contacts

    elements = read_elements(args.tle, skip_bad=True)
    element = next((e for e in elements if str(e.norad_id) == args.node), None)
    if element is None:
        raise CommandError(f"--tle {args.tle} holds no element set for node {args.node}")
    stations = read_stations(args.stations or "bundled:ground-stations", skip_bad=False)
    start = args.start or element.epoch.replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=args.hours)
    return element, stations, start, compute_contacts([element], stations, start, end)


def _online(
    args: argparse.Namespace,
) -> tuple[ElementSet, list[GroundStation], datetime, list[ContactWindow]]:
    from orbitq.services.orbits import ContactWindow

    start = args.start or datetime.now(UTC).replace(microsecond=0)
    end = start + timedelta(hours=args.hours)
    with client_from(args) as client:
        element = _element_of(client, args.node)
        stations = _stations_of(client)
        contacts: list[ContactWindow] = []
        token = ""
        for _ in range(CONTACT_PAGES_MAX):
            page = client.list_contacts(
                args.node, "", start, end, page_size=PAGE_SIZE, page_token=token
            )
            contacts.extend(
                ContactWindow(c.node, c.station, c.aos, c.los, c.max_elevation_deg)
                for c in page.items
            )
            if not (token := page.next_page_token):
                break
    return element, stations, start, contacts


def _element_of(client: BrokerClient, node_id: str) -> ElementSet:
    from orbitq.services.orbits import parse_elements

    token = ""
    for _ in range(NODE_PAGES_MAX):
        page = client.list_nodes(page_size=PAGE_SIZE, page_token=token)
        for node in page.items:
            if node.id == node_id:
                text = (
                    f"{node.name}\n{node.tle_line1}\n{node.tle_line2}\n"
                    if node.tle_line1
                    else node.omm_json
                )
                parsed = parse_elements(text)
                if not parsed.elements:
                    raise CommandError(f"node {node_id}'s element set does not parse")
                return parsed.elements[0]
        if not (token := page.next_page_token):
            break
    raise CommandError(f"the broker has no node {node_id} (see `orbitq node list`)")


def _stations_of(client: BrokerClient) -> list[GroundStation]:
    from orbitq.services.orbits import GroundStation

    stations: list[GroundStation] = []
    token = ""
    for _ in range(STATION_PAGES_MAX):
        page = client.list_stations(page_size=PAGE_SIZE, page_token=token)
        stations.extend(
            GroundStation(
                s.id,
                s.name,
                s.latitude_deg,
                s.longitude_deg,
                s.altitude_m,
                s.min_elevation_deg,
                s.antennas,
            )
            for s in page.items
        )
        if not (token := page.next_page_token):
            break
    return stations


def sky_of(
    element: ElementSet,
    stations: list[GroundStation],
    contacts: list[ContactWindow],
    start: datetime,
    hours: float,
) -> Sky:
    """Everything the picture shows: the track, each station's circle for the node's altitude,
    the contacts as seconds along the track."""
    from orbitq.clients.cli.skymap import Sky, SkyStation
    from orbitq.services.orbits.groundtrack import footprint, ground_track, load_land

    try:
        track = ground_track(element, start, hours * 3600.0)
    except ValueError as error:
        raise CommandError(str(error)) from None
    end = start + timedelta(hours=hours)
    return Sky(
        title=(
            f"{element.name} ({element.norad_id}), {start:%Y-%m-%d %H:%M} to "
            f"{end:%Y-%m-%d %H:%M} UTC at {track.altitude_km:,.0f} km: "
            f"{len(contacts)} contact(s)"
        ),
        seconds=track.seconds,
        latitude_deg=track.latitude_deg,
        longitude_deg=track.longitude_deg,
        stations=[
            SkyStation(
                s.id,
                s.latitude_deg,
                s.longitude_deg,
                footprint(s.latitude_deg, s.longitude_deg, track.altitude_km, s.min_elevation_deg),
            )
            for s in stations
        ],
        contacts=[_sky_contact(c, start) for c in contacts],
        land=load_land(),
    )


def _sky_contact(contact: ContactWindow, start: datetime) -> SkyContact:
    from orbitq.clients.cli.skymap import SkyContact

    return SkyContact(
        contact.station,
        (contact.aos - start).total_seconds(),
        (contact.los - start).total_seconds(),
    )
