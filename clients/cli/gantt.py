"""The schedule as a picture: a Gantt chart of a horizon, from a schedule document (brief §9).

Owns: `ScheduleView` (what a horizon of a document shows: the busiest nodes' runs, uplinks,
downlinks and contacts, coloured by tenant; each station's antennas in use over time) and
`plot_schedule`, which draws it on two panels and writes a PNG. Reads only the document, so the
same picture comes from `orbitq schedule export`'s file, from a running broker or from
`orbitq sim`'s `schedule.json`.
Does not own: where the document comes from (plots.py, the sim command) or the canvas
(pictures.py).

Each node row shows its used contacts as light bands, uplinks in the upper third, runs in the
middle and downlink segments in the lower third. Links last seconds on an axis of hours, so each
mark is drawn at least LINK_MARK_PX_MIN pixels wide. The station panel shows, per time bin, the
peak share of a station's antennas carrying an uplink or downlink of the schedule.
"""

from __future__ import annotations

import calendar
import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter

from orbitq.clients.cli.pictures import new_figure, save_png, tenant_colours

SIZE_PX_DEFAULT = (1600, 1000)
NODES_SHOWN_DEFAULT = 30
NODES_SHOWN_MAX = 200
STATIONS_SHOWN_MAX = 30
TIME_BINS = 240
LINK_MARK_PX_MIN = 3.0
# Share of the figure's width the time axis gets (the rest: labels, legend, colour bar).
AXIS_WIDTH_SHARE = 0.8
# Share of the figure's height the two panels get (the rest: title, time axis).
PANELS_HEIGHT_SHARE = 0.85
LABEL_POINTS_MIN = 4.0
LABEL_POINTS_MAX = 10.0
CONTACT_COLOUR = "#d9d9d9"
TICK_HOURS = (0.25, 0.5, 1.0, 2.0, 3.0, 6.0, 12.0, 24.0, 48.0)
TICKS_MAX = 12
KINDS = ("uplink", "run", "downlink")
# (offset from the row's centre, height) of each kind's bars, in rows.
_BAR_OF_KIND = {"uplink": (-0.42, 0.22), "run": (-0.18, 0.36), "downlink": (0.2, 0.22)}

Spans = list[tuple[float, float]]  # (start, width) in hours from the view's start


def _seconds(text: str) -> int:
    return calendar.timegm(datetime.fromisoformat(text.replace("Z", "+00:00")).timetuple())


@dataclass
class ScheduleView:
    """What one picture of a schedule shows; times in hours from `start`."""

    start: datetime
    hours: float
    nodes: list[str]
    # kind -> tenant -> row -> spans
    bars: dict[str, dict[str, dict[int, Spans]]]
    contacts: dict[int, Spans]
    tenants: list[str]
    stations: list[str]
    antennas: dict[str, int]
    # stations x TIME_BINS: peak share of antennas busy in each bin
    station_use: npt.NDArray[np.float64]
    placed: int
    rejected: int
    nodes_total: int
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        document: Mapping[str, Any],
        *,
        nodes_max: int = NODES_SHOWN_DEFAULT,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> ScheduleView:
        """The view of `document` over [start, end) (default: its horizon); ValueError when
        the document is not a schedule document or the horizon is empty."""
        try:
            return _build(document, nodes_max, start, end)
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, ValueError) and "horizon" in str(error):
                raise
            raise ValueError(f"not a schedule document (brief §9): {error!r}") from None


def _build(
    document: Mapping[str, Any], nodes_max: int, start: datetime | None, end: datetime | None
) -> ScheduleView:
    first = _seconds(document["horizon"]["start"]) if start is None else _epoch(start)
    last = _seconds(document["horizon"]["end"]) if end is None else _epoch(end)
    if last <= first:
        raise ValueError("the horizon's end must be after its start")
    tenant_of = {r["id"]: r["tenant"] for r in document["requests"]}
    contacts = {c["id"]: c for c in document["contacts"]}

    def clip(a: int, b: int) -> tuple[float, float] | None:
        a, b = max(a, first), min(b, last)
        return None if b < a else ((a - first) / 3600.0, (b - a) / 3600.0)

    # node -> kind -> tenant -> spans; station -> (start, end) seconds of its links
    by_node: dict[str, dict[str, dict[str, Spans]]] = defaultdict(
        lambda: {kind: defaultdict(list) for kind in KINDS}
    )
    busy: dict[str, float] = defaultdict(float)
    links: dict[str, list[tuple[int, int]]] = defaultdict(list)
    placed = 0
    for placement in document["placements"]:
        tenant = tenant_of.get(placement["request"], "?")
        node = placement["node"]
        uplink = placement["uplink"]
        up_start = _seconds(uplink["at"])
        up_end = _seconds(uplink["end"]) if "end" in uplink else up_start
        segments = [("uplink", up_start, up_end, _station(uplink, contacts))]
        segments.append(("run", _seconds(placement["start"]), _seconds(placement["end"]), ""))
        segments.extend(
            ("downlink", _seconds(d["start"]), _seconds(d["end"]), _station(d, contacts))
            for d in placement["downlink"]
        )
        shown = False
        for kind, a, b, station in segments:
            span = clip(a, b)
            if span is None:
                continue
            shown = True
            by_node[node][kind][tenant].append(span)
            busy[node] += span[1]
            if station:
                links[station].append((max(a, first), min(b, last)))
        placed += shown
    rows = sorted(busy, key=lambda n: (-busy[n], n))[: max(1, min(nodes_max, NODES_SHOWN_MAX))]
    row_of = {node: i for i, node in enumerate(rows)}
    bars: dict[str, dict[str, dict[int, Spans]]] = {k: defaultdict(dict) for k in KINDS}
    for node, kinds in by_node.items():
        if node in row_of:
            for kind, spans_of in kinds.items():
                for tenant, spans in spans_of.items():
                    bars[kind][tenant][row_of[node]] = spans
    bands: dict[int, Spans] = defaultdict(list)
    for contact in document["contacts"]:
        span = clip(_seconds(contact["start"]), _seconds(contact["end"]))
        if contact["node"] in row_of and span is not None:
            bands[row_of[contact["node"]]].append(span)
    antennas = {s["id"]: max(1, int(s["antennas"])) for s in document["stations"]}
    stations = sorted(links, key=lambda s: (-sum(b - a for a, b in links[s]), s))
    stations = sorted(stations[:STATIONS_SHOWN_MAX])
    use = np.zeros((len(stations), TIME_BINS))
    for i, station in enumerate(stations):
        use[i] = _peak_use(links[station], first, last) / antennas.get(station, 1)
    tenants = sorted({t for kind in bars.values() for t in kind})
    return ScheduleView(
        start=datetime.fromtimestamp(first, UTC),
        hours=(last - first) / 3600.0,
        nodes=rows,
        bars={kind: dict(tenants_of) for kind, tenants_of in bars.items()},
        contacts=dict(bands),
        tenants=tenants,
        stations=stations,
        antennas=antennas,
        station_use=np.minimum(use, 1.0),
        placed=placed,
        rejected=len(document["rejected"]),
        nodes_total=len(document["nodes"]),
        counts={kind: _count(bars[kind]) for kind in KINDS},
    )


def _count(spans_of: Mapping[str, Mapping[int, Spans]]) -> int:
    return sum(len(spans) for rows in spans_of.values() for spans in rows.values())


def _epoch(value: datetime) -> int:
    return calendar.timegm(value.astimezone(UTC).timetuple())


def _station(link: Mapping[str, Any], contacts: Mapping[str, Mapping[str, Any]]) -> str:
    """A link's station: named in the broker's document, else found through its contact."""
    if "station" in link:
        return str(link["station"])
    contact = contacts.get(link.get("contact", ""))
    return str(contact["station"]) if contact else ""


def _peak_use(links: Sequence[tuple[int, int]], first: int, last: int) -> npt.NDArray[np.float64]:
    """The most links open at once in each of TIME_BINS bins of [first, last)."""
    events = sorted([(a, 1) for a, b in links if b > a] + [(b, -1) for a, b in links if b > a])
    peak = np.zeros(TIME_BINS)
    width = (last - first) / TIME_BINS
    open_now = 0
    for (at, step), (until, _) in itertools.pairwise(events):
        open_now += step
        if open_now > 0 and until > at:
            lo = int((at - first) // width)
            hi = min(TIME_BINS, math.ceil((until - first) / width))
            peak[lo:hi] = np.maximum(peak[lo:hi], open_now)
    return peak


def plot_schedule(
    document: Mapping[str, Any],
    out: Path,
    *,
    nodes_max: int = NODES_SHOWN_DEFAULT,
    start: datetime | None = None,
    end: datetime | None = None,
    size_px: tuple[int, int] = SIZE_PX_DEFAULT,
) -> ScheduleView:
    """Draw the schedule of `document` to the PNG `out`; returns what it showed."""
    view = ScheduleView.of(document, nodes_max=nodes_max, start=start, end=end)
    figure = new_figure(size_px)
    draw(figure, view, size_px)
    save_png(figure, out)
    return view


def draw(figure: Figure, view: ScheduleView, size_px: tuple[int, int]) -> None:
    rows = max(1, len(view.nodes))
    stations = max(1, len(view.stations))
    # The node rows get most of the height; the station panel at most 45 % of it.
    heights = [max(2.0, float(rows)), max(1.0, min(stations * 0.35, rows * 0.8))]
    nodes_axes, stations_axes = figure.subplots(2, 1, sharex=True, height_ratios=heights)
    panels_px = size_px[1] * PANELS_HEIGHT_SHARE
    row_px = [
        panels_px * h / sum(heights) / n for h, n in zip(heights, (rows, stations), strict=True)
    ]
    colours = tenant_colours(view.tenants)
    link_width_min = view.hours * LINK_MARK_PX_MIN / (size_px[0] * AXIS_WIDTH_SHARE)
    _draw_nodes(nodes_axes, view, colours, link_width_min, _label_size(row_px[0]))
    _draw_stations(figure, stations_axes, view, _label_size(row_px[1]))
    _time_axis(stations_axes, view)
    end = view.start + timedelta(hours=view.hours)
    shown = f"{len(view.nodes)} busiest of {view.nodes_total} nodes"
    # Over the node panel, not the figure: the legend to its right keeps its place.
    nodes_axes.set_title(
        f"Schedule {view.start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC: {view.placed:,} "
        f"placements, {view.rejected:,} rejected; {shown}"
    )
    handles: list[Patch | Line2D] = [Patch(color=colours[t], label=t) for t in view.tenants]
    handles += [
        Patch(color=CONTACT_COLOUR, label="contact (band)"),
        Line2D([], [], color="black", lw=2, label="uplink (upper)"),
        Line2D([], [], color="black", lw=6, label="run (middle)"),
        Line2D([], [], color="black", lw=2, label="downlink (lower)"),
    ]
    figure.legend(handles=handles, loc="outside right upper", title="tenant", fontsize="small")


def _draw_nodes(
    axes: Axes,
    view: ScheduleView,
    colours: Mapping[str, str],
    link_width_min: float,
    label_size: float,
) -> None:
    for row, spans in view.contacts.items():
        axes.broken_barh(spans, (row - 0.46, 0.92), facecolors=CONTACT_COLOUR, linewidth=0)
    for kind, tenants in view.bars.items():
        offset, height = _BAR_OF_KIND[kind]
        for tenant, rows in tenants.items():
            for row, spans in rows.items():
                drawn = spans if kind == "run" else [(a, max(w, link_width_min)) for a, w in spans]
                axes.broken_barh(
                    drawn, (row + offset, height), facecolors=colours[tenant], linewidth=0
                )
    axes.set_ylim(max(1, len(view.nodes)) - 0.5, -0.5)
    axes.set_yticks(range(len(view.nodes)), view.nodes, fontsize=label_size)
    axes.set_ylabel("node (NORAD id)")
    axes.set_xlim(0, view.hours)
    axes.grid(axis="x", color="#eeeeee", linewidth=0.8)
    axes.set_axisbelow(True)
    if not view.nodes:
        axes.text(0.5, 0.5, "nothing placed in this horizon", transform=axes.transAxes)


def _draw_stations(figure: Figure, axes: Axes, view: ScheduleView, label_size: float) -> None:
    if not view.stations:
        axes.text(0.5, 0.5, "no links in this horizon", transform=axes.transAxes, ha="center")
        axes.set_yticks([])
        return
    # Idle bins stay white: only the bins with a link get a colour.
    image = axes.imshow(
        np.ma.masked_equal(view.station_use, 0.0),
        aspect="auto",
        interpolation="nearest",
        cmap=colormaps["YlOrRd"].with_extremes(bad="white"),
        vmin=0.0,
        vmax=1.0,
        extent=(0.0, view.hours, len(view.stations) - 0.5, -0.5),
    )
    labels = [f"{s} ({view.antennas.get(s, 1)})" for s in view.stations]
    axes.set_yticks(range(len(view.stations)), labels, fontsize=label_size)
    axes.set_ylabel("station (antennas)")
    bar = figure.colorbar(image, ax=axes, pad=0.01, fraction=0.03)
    bar.set_label("antennas busy, peak share", fontsize="small")


def _time_axis(axes: Axes, view: ScheduleView) -> None:
    step = next((h for h in TICK_HOURS if view.hours / h <= TICKS_MAX), TICK_HOURS[-1])
    start = view.start
    # Ticks on whole multiples of the step in UTC (00:00, 03:00...), not on the view's start.
    since_midnight = (start - start.replace(hour=0, minute=0, second=0)).total_seconds() / 3600
    first = (step - since_midnight % step) % step
    axes.xaxis.set_major_locator(FixedLocator(np.arange(first, view.hours + 1e-9, step).tolist()))

    def clock(hours: float, _position: float) -> str:
        at = start + timedelta(hours=hours)
        return f"{at:%H:%M}\n{at:%b %d}" if at.hour == 0 and at.minute == 0 else f"{at:%H:%M}"

    axes.xaxis.set_major_formatter(FuncFormatter(clock))
    axes.set_xlabel(f"UTC (from {start:%Y-%m-%d %H:%M})")


def _label_size(row_px: float) -> float:
    """A label's size in points that fits a row of `row_px` pixels (1 pt = 1.39 px at 100 dpi,
    with line spacing)."""
    return max(LABEL_POINTS_MIN, min(LABEL_POINTS_MAX, row_px / 1.8))
