"""The in-memory world the plugins read and the reserve plugins write.

Owns: per-node state (`NodeInfo`: the node, its cpu/storage/radio timelines, its contacts
sorted by start with a running maximum of their ends for bisection, the set of stations it
ever sees) and per-station state (`StationInfo`: its antenna timeline), indexed by small
integers; the contact index by id; a label index for node selectors; and the world maxima the
pre-filters compare against. `free_link_runs` is the one query every link plugin shares.

Does not own: placements (the runtime's), plugin logic, or any policy. Mutations of contacts
and nodes go through the runtime, which keeps bookings consistent.

Contacts per node are kept as parallel lists (`contact_starts`, `contact_max_ends`, ...) since
the hot loops bisect and index them millions of times; Python lists of ints beat numpy for
scalar access. A node's radio is exclusive (capacity 1): it talks to one station at a time, so
its link segments never overlap and a station's antenna count is a count of satellites.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from orbitq.services.scheduler.model import Contact, Node, Station
from orbitq.services.scheduler.timeline import Timeline

WORLD_NODES_MAX = 100_000
WORLD_STATIONS_MAX = 62  # station sets are bitmasks in one machine word
CONTACTS_PER_NODE_MAX = 20_000
RADIO_CAPACITY = 1
SEEING_CACHE_MAX = 1024  # station selectors remembered by nodes_seeing
SLOT_ALTERNATIONS_MAX = 64  # antenna and radio searches taking turns until they agree
STATION_INSERTS_MAX = 64  # more new contacts at a station at once: one merge instead


@dataclass(slots=True)
class NodeInfo:
    """One node and everything time-varying about it."""

    index: int
    node: Node
    cpu: Timeline = field(default_factory=Timeline)
    storage: Timeline = field(default_factory=Timeline)
    radio: Timeline = field(default_factory=Timeline)
    contact_ids: list[str] = field(default_factory=list)
    contact_starts: list[int] = field(default_factory=list)
    contact_ends: list[int] = field(default_factory=list)
    contact_stations: list[int] = field(default_factory=list)
    contact_max_ends: list[int] = field(default_factory=list)
    station_mask: int = 0

    def first_contact_ending_after(self, instant: int) -> int:
        """Index of the first contact (by start) that may end after `instant`."""
        return bisect_right(self.contact_max_ends, instant)

    def set_contacts(self, contacts: Sequence[tuple[int, int, int, str]]) -> None:
        """Replace the contacts with (start, end, station index, id) tuples."""
        assert len(contacts) <= CONTACTS_PER_NODE_MAX, "contacts per node over the limit"
        ordered = sorted(contacts)
        self.contact_starts = [item[0] for item in ordered]
        self.contact_ends = [item[1] for item in ordered]
        self.contact_stations = [item[2] for item in ordered]
        self.contact_ids = [item[3] for item in ordered]
        running = 0
        max_ends: list[int] = []
        mask = 0
        for start, end, station, _ in ordered:
            assert start < end
            running = max(running, end)
            max_ends.append(running)
            mask |= 1 << station
        self.contact_max_ends = max_ends
        self.station_mask = mask

    def append_contacts(self, ordered: Sequence[tuple[int, int, int, str]]) -> None:
        """Add (start, end, station index, id) tuples that sort after every known one: the
        hourly roll of the horizon costs O(new), not a re-sort of the node's list."""
        assert len(self.contact_starts) + len(ordered) <= CONTACTS_PER_NODE_MAX
        running = self.contact_max_ends[-1] if self.contact_max_ends else 0
        mask = self.station_mask
        for start, end, station, contact_id in ordered:
            assert start < end
            running = max(running, end)
            self.contact_starts.append(start)
            self.contact_ends.append(end)
            self.contact_stations.append(station)
            self.contact_ids.append(contact_id)
            self.contact_max_ends.append(running)
            mask |= 1 << station
        self.station_mask = mask

    def contact_tuples(self) -> list[tuple[int, int, int, str]]:
        return list(
            zip(
                self.contact_starts,
                self.contact_ends,
                self.contact_stations,
                self.contact_ids,
                strict=True,
            )
        )


@dataclass(slots=True)
class StationInfo:
    """One station: its antenna timeline and its contacts by start (node indices)."""

    index: int
    station: Station
    antennas: Timeline = field(default_factory=Timeline)
    contact_starts: list[int] = field(default_factory=list)
    contact_nodes: list[int] = field(default_factory=list)
    longest: int = 0  # the longest contact, to bisect for those still open at an instant


@dataclass(frozen=True, slots=True)
class ContactRef:
    """Where a contact lives: its node and station indices and its window."""

    node: int
    station: int
    start: int
    end: int


class World:
    """Nodes, stations and contacts indexed for the plugins."""

    def __init__(self, nodes: Sequence[Node], stations: Sequence[Station]) -> None:
        if len(nodes) > WORLD_NODES_MAX:
            raise ValueError(f"at most {WORLD_NODES_MAX} nodes")
        if len(stations) > WORLD_STATIONS_MAX:
            raise ValueError(f"at most {WORLD_STATIONS_MAX} stations")
        self.nodes: list[NodeInfo] = [NodeInfo(index, node) for index, node in enumerate(nodes)]
        self.stations: list[StationInfo] = [
            StationInfo(index, station) for index, station in enumerate(stations)
        ]
        self.node_index: dict[str, int] = {info.node.id: info.index for info in self.nodes}
        self.station_index: dict[str, int] = {s.station.id: s.index for s in self.stations}
        if len(self.node_index) != len(nodes):
            raise ValueError("node ids must be unique")
        if len(self.station_index) != len(stations):
            raise ValueError("station ids must be unique")
        self.contacts: dict[str, ContactRef] = {}
        self.contacts_until = 0
        self._label_index: dict[tuple[str, str], list[int]] = {}
        for info in self.nodes:
            for pair in info.node.labels.items():
                self._label_index.setdefault(pair, []).append(info.index)
        self.all_stations_mask = (1 << len(self.stations)) - 1
        self._seeing: dict[int, list[int]] = {}  # station mask -> nodes with such contacts
        self.cpu_max = max((n.cpu_millicores for n in nodes), default=0)
        self.storage_max = max((n.storage_mb for n in nodes), default=0)
        self.downlink_mbps_max = max((n.downlink_mbps for n in nodes), default=0)
        self.uplink_mbps_max = max((n.uplink_mbps for n in nodes), default=0)

    def nodes_with_labels(self, labels: Mapping[str, str]) -> list[int]:
        """Sorted indices of nodes carrying every pair of `labels` (non-empty)."""
        assert labels
        lists = sorted((self._label_index.get(pair, []) for pair in labels.items()), key=len)
        if len(lists) == 1:
            return lists[0]
        common = set(lists[0]).intersection(*lists[1:])
        return sorted(common)

    def nodes_seeing(self, mask: int) -> list[int]:
        """Sorted indices of nodes with a known contact at one of the stations in `mask`
        (cached per mask until contacts change)."""
        found = self._seeing.get(mask)
        if found is None:
            if len(self._seeing) >= SEEING_CACHE_MAX:
                self._seeing.clear()
            found = [info.index for info in self.nodes if info.station_mask & mask]
            self._seeing[mask] = found
        return found

    def nodes_in_contact(self, mask: int, start: int, end: int, budget: int) -> list[int] | None:
        """Sorted indices of nodes with a contact at a station in `mask` overlapping
        [start, end), or None when that would mean scanning more than `budget` contacts
        (then nearly every node has one and narrowing would not pay)."""
        spans = []
        total = 0
        for place in self.stations:
            if not (mask >> place.index) & 1:
                continue
            first = bisect_right(place.contact_starts, start - place.longest)
            last = bisect_left(place.contact_starts, end)
            spans.append((place, first, last))
            total += last - first
            if total > budget:
                return None
        found: set[int] = set()
        for place, first, last in spans:
            found.update(place.contact_nodes[first:last])
        return sorted(found)

    def stations_mask(self, ids: Iterable[str], countries: Iterable[str]) -> int:
        """Bitmask of stations allowed by an id list and a country list (empty = any)."""
        id_set = set(ids)
        country_set = set(countries)
        mask = 0
        for info in self.stations:
            if id_set and info.station.id not in id_set:
                continue
            if country_set and info.station.country not in country_set:
                continue
            mask |= 1 << info.index
        return mask

    def add_contacts(self, contacts: Iterable[Contact]) -> int:
        """Index new contacts (unknown nodes or stations are refused); returns how many."""
        per_node: dict[int, list[tuple[int, int, int, str]]] = {}
        per_station: dict[int, list[tuple[int, int]]] = {}
        added = 0
        for contact in contacts:
            node = self.node_index.get(contact.node)
            station = self.station_index.get(contact.station)
            if node is None or station is None:
                raise ValueError(f"contact {contact.id}: unknown node or station")
            if contact.id in self.contacts:
                existing = self.contacts[contact.id]
                if existing != ContactRef(node, station, contact.start, contact.end):
                    raise ValueError(f"contact {contact.id} already exists with other values")
                continue
            self.contacts[contact.id] = ContactRef(node, station, contact.start, contact.end)
            per_node.setdefault(node, []).append((contact.start, contact.end, station, contact.id))
            per_station.setdefault(station, []).append((contact.start, node))
            self.stations[station].longest = max(
                self.stations[station].longest, contact.end - contact.start
            )
            self.contacts_until = max(self.contacts_until, contact.end)
            added += 1
        for node, items in per_node.items():
            info = self.nodes[node]
            items.sort()
            if info.contact_starts and items[0] > (
                info.contact_starts[-1],
                info.contact_ends[-1],
                info.contact_stations[-1],
                info.contact_ids[-1],
            ):
                info.append_contacts(items)  # the horizon rolled: all after what is known
            else:
                info.set_contacts(info.contact_tuples() + items)
        for station, pairs in per_station.items():
            place = self.stations[station]
            pairs.sort()
            if place.contact_starts and pairs[0] >= (
                place.contact_starts[-1],
                place.contact_nodes[-1],
            ):
                place.contact_starts.extend(start for start, _ in pairs)
                place.contact_nodes.extend(node for _, node in pairs)
                continue  # the horizon rolled: all after what the station knows
            if len(pairs) <= STATION_INSERTS_MAX:  # a few (a moved contact): O(log n) + memmove
                for start, node in pairs:
                    self._insert_into_station(place, start, node)
                continue
            merged = sorted([*zip(place.contact_starts, place.contact_nodes, strict=True), *pairs])
            place.contact_starts = [start for start, _ in merged]
            place.contact_nodes = [node for _, node in merged]
        if added:
            self._seeing.clear()
        return added

    def remove_contacts(self, ids: Iterable[str]) -> int:
        """Forget the contacts with these ids (unknown ids are skipped); returns how many.

        Incremental: only the nodes and stations that held one are re-indexed, so a moved
        contact (removed, then added with its new window) costs O(that node's and station's
        contacts), not a rebuild. Bookings on a removed contact are the runtime's to release
        first. A station's `longest` stays an upper bound (it only widens a bisection)."""
        per_node: dict[int, set[str]] = {}
        per_station: dict[int, set[tuple[int, int]]] = {}
        latest = False
        for contact_id in ids:
            ref = self.contacts.pop(contact_id, None)
            if ref is None:
                continue
            latest = latest or ref.end >= self.contacts_until
            per_node.setdefault(ref.node, set()).add(contact_id)
            per_station.setdefault(ref.station, set()).add((ref.start, ref.node))
        if not per_node:
            return 0
        removed = 0
        for node, gone in per_node.items():
            info = self.nodes[node]
            info.set_contacts([item for item in info.contact_tuples() if item[3] not in gone])
            removed += len(gone)
        for station, pairs in per_station.items():
            self._remove_from_station(self.stations[station], pairs)
        if latest:  # the latest end left: each node's running maximum ends with its own
            self.contacts_until = max(
                (info.contact_max_ends[-1] for info in self.nodes if info.contact_max_ends),
                default=0,
            )
        self._seeing.clear()
        return removed

    @staticmethod
    def _insert_into_station(place: StationInfo, start: int, node: int) -> None:
        """Insert (start, node) where a sort by (start, node) would put it."""
        starts, nodes = place.contact_starts, place.contact_nodes
        index = bisect_left(starts, start)
        while index < len(starts) and starts[index] == start and nodes[index] < node:
            index += 1
        starts.insert(index, start)
        nodes.insert(index, node)

    @staticmethod
    def _remove_from_station(place: StationInfo, pairs: set[tuple[int, int]]) -> None:
        """Drop one (start, node) entry per pair from the station's by-start lists (a node
        has at most one contact per station starting at an instant: its radio is one)."""
        starts, nodes = place.contact_starts, place.contact_nodes
        for start, node in sorted(pairs, reverse=True):  # from the end: indices stay valid
            index = bisect_left(starts, start)
            while index < len(starts) and starts[index] == start:
                if nodes[index] == node:
                    del starts[index]
                    del nodes[index]
                    break
                index += 1

    def fingerprint(self) -> tuple[object, ...]:
        """Everything the plugins read, in a comparable form (two worlds with equal
        fingerprints place requests identically); tests compare an incrementally updated
        world with a rebuilt one. A station's `longest` is left out: it is an upper bound."""
        nodes = tuple(
            (
                info.node,
                tuple(info.contact_tuples()),
                tuple(info.contact_max_ends),
                info.station_mask,
                tuple(info.cpu.times),
                tuple(info.cpu.levels),
                tuple(info.storage.times),
                tuple(info.storage.levels),
                tuple(info.radio.times),
                tuple(info.radio.levels),
            )
            for info in self.nodes
        )
        stations = tuple(
            (
                place.station,
                tuple(zip(place.contact_starts, place.contact_nodes, strict=True)),
                tuple(place.antennas.times),
                tuple(place.antennas.levels),
            )
            for place in self.stations
        )
        contacts = tuple(sorted(self.contacts.items()))
        labels = tuple(sorted((pair, tuple(nodes)) for pair, nodes in self._label_index.items()))
        return nodes, stations, contacts, self.contacts_until, labels

    def prune_contacts(self, before: int) -> int:
        """Forget each node's leading contacts that all ended by `before`; returns how many.

        Only the prefix (by start) whose running maximum end is <= `before` goes: O(dropped)
        per node, and the running maxima of what stays remain valid. A contact that ended by
        `before` behind a longer one that has not is forgotten at a later prune."""
        dropped = 0
        for info in self.nodes:
            cut = bisect_right(info.contact_max_ends, before)
            if cut == 0:
                continue
            for contact_id in info.contact_ids[:cut]:
                del self.contacts[contact_id]
            del info.contact_ids[:cut]
            del info.contact_starts[:cut]
            del info.contact_ends[:cut]
            del info.contact_stations[:cut]
            del info.contact_max_ends[:cut]
            mask = 0
            for station in set(info.contact_stations):
                mask |= 1 << station
            info.station_mask = mask
            dropped += cut
        for place in self.stations:
            cut = bisect_right(place.contact_starts, before - place.longest)
            del place.contact_starts[:cut]
            del place.contact_nodes[:cut]
        if dropped:
            self._seeing.clear()
        return dropped

    def free_link_runs(
        self, node: NodeInfo, station: int, start: int, end: int, *, enough: int = 0, piece: int = 1
    ) -> list[tuple[int, int]]:
        """Sub-intervals of at least `piece` seconds of [start, end) where the station has a
        free antenna and the node's radio is idle, in time order; with `enough`, at least the
        first `enough` such seconds, possibly more."""
        info = self.stations[station]
        antennas, limit = info.antennas, info.station.antennas - 1
        radio = node.radio
        if not radio.times or radio.max_over(start, end) == 0:
            return antennas.free_runs(start, end, limit, enough, piece)
        runs: list[tuple[int, int]] = []
        found = 0
        for idle_start, idle_end in radio.free_runs(start, end, RADIO_CAPACITY - 1, 0, piece):
            wanted = enough - found if enough else 0
            for run in antennas.free_runs(idle_start, idle_end, limit, wanted, piece):
                runs.append(run)
                found += run[1] - run[0]
            if 0 < enough <= found:
                break
        return runs

    def earliest_link_slot(
        self, node: NodeInfo, station: int, start: int, end: int, seconds: int
    ) -> int | None:
        """The earliest `at` with [at, at + seconds) inside [start, end), a free antenna at the
        station and the node's radio idle throughout."""
        antennas = self.stations[station]
        limit = antennas.station.antennas - 1
        latest = end - seconds
        radio = node.radio
        at: int | None = start
        for _ in range(SLOT_ALTERNATIONS_MAX):
            assert at is not None
            at = antennas.antennas.earliest_fit(at, seconds, limit, latest)
            if at is None or not radio.times:
                return at
            again = radio.earliest_fit(at, seconds, RADIO_CAPACITY - 1, latest)
            if again is None or again == at:
                return again
            at = again
        return None
