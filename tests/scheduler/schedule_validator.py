"""An independent checker of a schedule document (brief §9), written from the brief's text.

It shares no code with orbitq.services.scheduler: it parses the JSON document itself and
recomputes everything from it, so a bug in the scheduler cannot hide behind the same bug here.

Checks (each violation names its kind, which the tests assert on):
- `reference`: a placement names an unknown request, node or contact, or a request is placed
  twice, or both placed and rejected;
- `run_length`: end - start is not the request's run_seconds;
- `window`: a placement (its uplink, run and downlink) leaves [not_before, deadline];
- `uplink_contact`: the uplink is not inside a contact of the placement's node;
- `uplink_order`: the uplink does not end by the start;
- `downlink_contact`: a downlink segment is not inside a contact of the placement's node;
- `downlink_order`: a segment begins before the run ends;
- `downlink_seconds`: the segments do not add up to ceil(output_mb * 8 / downlink_mbps);
- `cpu` / `storage`: a node's cpu or storage over capacity at some instant (cpu is held over
  [start, end), storage from start until the last downlink segment ends);
- `antennas`: a station serves more links at once (uplinks and downlink segments) than it has
  antennas;
- `radio` (orbitq's rule beyond §9, on by default): a node has two links at the same instant.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Violation:
    kind: str
    message: str


def seconds(text: str) -> int:
    """RFC 3339 UTC with a Z, to integer seconds since the epoch."""
    assert isinstance(text, str), f"not a time: {text!r}"
    assert text.endswith("Z"), f"not an RFC 3339 UTC time: {text!r}"
    instant = datetime.fromisoformat(text)
    offset = instant.utcoffset()
    assert offset is not None
    assert offset.total_seconds() == 0
    return int(instant.timestamp())


def _peak(intervals: list[tuple[int, int, int]]) -> tuple[int, int]:
    """Highest total amount held at once over half-open intervals, and when."""
    events: list[tuple[int, int]] = []
    for start, end, amount in intervals:
        events.append((start, amount))
        events.append((end, -amount))
    events.sort(key=lambda event: (event[0], event[1]))  # releases before takes at one instant
    level = best = 0
    when = 0
    for instant, delta in events:
        level += delta
        if level > best:
            best, when = level, instant
    return best, when


def validate(doc: dict[str, Any], *, radio: bool = True) -> list[Violation]:
    out: list[Violation] = []

    def bad(kind: str, message: str) -> None:
        out.append(Violation(kind, message))

    nodes = {n["id"]: n for n in doc["nodes"]}
    stations = {s["id"]: s for s in doc["stations"]}
    contacts = {c["id"]: c for c in doc["contacts"]}
    requests = {r["id"]: r for r in doc["requests"]}
    cpu: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    storage: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    links_at_station: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    links_of_node: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    seen: set[str] = set()
    rejected = {r["request"] for r in doc["rejected"]}

    def inside_contact(contact_id: str, node: str, start: int, end: int) -> str | None:
        """The station of the contact if [start, end) lies in it and it is the node's."""
        contact = contacts.get(contact_id)
        if contact is None or contact["node"] != node:
            return None
        if not seconds(contact["start"]) <= start < end <= seconds(contact["end"]):
            return None
        return str(contact["station"])

    for p in doc["placements"]:
        rid, node_id = p["request"], p["node"]
        request, node = requests.get(rid), nodes.get(node_id)
        if request is None or node is None:
            bad("reference", f"{rid}: unknown request or node {node_id}")
            continue
        if rid in seen or rid in rejected:
            bad("reference", f"{rid}: placed twice, or placed and rejected")
        seen.add(rid)
        start, end = seconds(p["start"]), seconds(p["end"])
        not_before, deadline = seconds(request["not_before"]), seconds(request["deadline"])
        if end - start != request["run_seconds"]:
            bad("run_length", f"{rid}: runs {end - start}s, asked {request['run_seconds']}s")
        if start < not_before or end > deadline:
            bad("window", f"{rid}: run [{start}, {end}) outside [{not_before}, {deadline}]")

        up = p["uplink"]
        up_at = seconds(up["at"])
        up_end = seconds(up["end"]) if "end" in up else up_at + 1
        if up_at < not_before:
            bad("window", f"{rid}: uplink at {up_at} before not_before {not_before}")
        station = inside_contact(up["contact"], node_id, up_at, up_end)
        if station is None:
            bad("uplink_contact", f"{rid}: uplink [{up_at}, {up_end}) not in a contact of it")
        else:
            links_at_station[station].append((up_at, up_end, 1))
        links_of_node[node_id].append((up_at, up_end, 1))
        if up_end > start:
            bad("uplink_order", f"{rid}: uplink ends {up_end}, after start {start}")

        finish = end
        total = 0
        for segment in p["downlink"]:
            s_start, s_end = seconds(segment["start"]), seconds(segment["end"])
            total += s_end - s_start
            finish = max(finish, s_end)
            station = inside_contact(segment["contact"], node_id, s_start, s_end)
            if station is None:
                bad("downlink_contact", f"{rid}: segment [{s_start}, {s_end}) not in a contact")
            else:
                links_at_station[station].append((s_start, s_end, 1))
            links_of_node[node_id].append((s_start, s_end, 1))
            if s_start < end:
                bad("downlink_order", f"{rid}: segment starts {s_start}, before end {end}")
            if s_end > deadline:
                bad("window", f"{rid}: segment ends {s_end}, after deadline {deadline}")
        needed = math.ceil(request["output_mb"] * 8 / node["downlink_mbps"])
        if total != needed:
            bad("downlink_seconds", f"{rid}: downlinks {total}s, needs {needed}s")
        cpu[node_id].append((start, end, request["cpu_millicores"]))
        storage[node_id].append((start, finish, request["storage_mb"]))

    for node_id, intervals in cpu.items():
        peak, when = _peak(intervals)
        if peak > nodes[node_id]["cpu_millicores"]:
            bad("cpu", f"{node_id}: {peak} millicores at {when}")
    for node_id, intervals in storage.items():
        peak, when = _peak(intervals)
        if peak > nodes[node_id]["storage_mb"]:
            bad("storage", f"{node_id}: {peak} MB at {when}")
    for station_id, intervals in links_at_station.items():
        peak, when = _peak(intervals)
        if station_id not in stations or peak > stations[station_id]["antennas"]:
            bad("antennas", f"{station_id}: {peak} links at {when}")
    if radio:
        for node_id, intervals in links_of_node.items():
            peak, when = _peak(intervals)
            if peak > 1:
                bad("radio", f"{node_id}: {peak} links at {when}")
    return out
