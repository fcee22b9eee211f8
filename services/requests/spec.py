"""A request's spec: validation with messages a person can act on, eligibility, and cost.

Owns: the checks of a spec on its own (`validate`: sizes, strings, the window against the
broker's clock, priority, selectors' shapes and country codes), against the world
(`check_selectors`: unknown node or station ids), which nodes a request may use at all
(`eligible`: a request larger than every node it may use is unschedulable at once, with the
reason), and what it costs (`quote_for`: the scheduler's `quote` on each link-rate pair of those
nodes; the reservation is the worst case). Every failure is an InvalidArgumentError naming the
field.

Does not own: the cost formulas (orbitq.services.scheduler.costs) or the world itself (the
`Catalog` is a snapshot the service builds from the constellation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from orbitq.services.constellation import NodeRecord
from orbitq.services.errors import InvalidArgumentError
from orbitq.services.orbits import GroundStation
from orbitq.services.orbits.stations import label_problems
from orbitq.services.requests.model import (
    CPU_MILLICORES_MAX,
    DEADLINE_AHEAD_SECONDS_MAX,
    NAME_CHARS_MAX,
    STORAGE_MB_MAX,
    TRANSFER_MB_MAX,
    WORKLOAD_CHARS_MAX,
    QuoteResult,
    RequestSpec,
)
from orbitq.services.scheduler import Cost, Quote, quote, rfc3339
from orbitq.services.scheduler.costs import downlink_seconds
from orbitq.services.scheduler.model import (
    ID_LENGTH_MAX,
    LABELS_MAX,
    PRIORITY_MAX,
    SELECTOR_ITEMS_MAX,
)

# ISO 3166-1 alpha-2: the officially assigned codes (249).
_ISO_CODES = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
"""
ISO_COUNTRIES = frozenset(_ISO_CODES.split())
assert len(ISO_COUNTRIES) == 249
# Unknown ids named in one message (the rest are counted).
UNKNOWN_IDS_SHOWN_MAX = 10

REASON_NO_NODE = "no node matches the node selector"
REASON_NO_STATION = "no station matches the station selector"


# -- the world, as validation sees it ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogNode:
    """A node's size and selectors (not its state: a node that is down now may be up later)."""

    id: str
    cpu_millicores: int
    storage_mb: int
    downlink_mbps: int
    uplink_mbps: int
    labels: Mapping[str, str] = field(hash=False)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Nodes and stations (station id -> country, "" when unknown) at one moment."""

    nodes: tuple[CatalogNode, ...]
    stations: Mapping[str, str] = field(hash=False)

    @classmethod
    def of(cls, nodes: Sequence[NodeRecord], stations: Sequence[GroundStation]) -> Catalog:
        return cls(
            tuple(
                CatalogNode(
                    node.id,
                    node.capacity.cpu_millicores,
                    node.capacity.storage_mb,
                    node.capacity.downlink_mbps,
                    node.capacity.uplink_mbps,
                    MappingProxyType(dict(node.labels)),
                )
                for node in nodes
            ),
            MappingProxyType({s.id: s.labels.get("country", "") for s in stations}),
        )


# -- the spec on its own -------------------------------------------------------------------------


def normalize(spec: RequestSpec) -> RequestSpec:
    """The same spec with duplicates dropped from its lists (first kept) and country codes in
    upper case, so equal requests compare equal."""
    return replace(
        spec,
        node_ids=tuple(dict.fromkeys(item.strip() for item in spec.node_ids)),
        station_countries=tuple(
            dict.fromkeys(item.strip().upper() for item in spec.station_countries)
        ),
        station_ids=tuple(dict.fromkeys(item.strip() for item in spec.station_ids)),
    )


def validate(spec: RequestSpec, now_s: int) -> RequestSpec:
    """The normalized spec with not_before resolved (0: now), or InvalidArgumentError."""
    spec = normalize(spec)
    _check_strings(spec)
    _check_sizes(spec)
    spec = _check_window(spec, now_s)
    if not 0 <= spec.priority <= PRIORITY_MAX:
        raise InvalidArgumentError(
            f"priority {spec.priority} is out of range: use 0 (lowest) to {PRIORITY_MAX}"
        )
    _check_selector_shapes(spec)
    return spec


def _check_strings(spec: RequestSpec) -> None:
    for name, value, limit in (
        ("name", spec.name, NAME_CHARS_MAX),
        ("workload", spec.workload, WORKLOAD_CHARS_MAX),
    ):
        if len(value) > limit:
            raise InvalidArgumentError(f"{name} is {len(value):,} characters; at most {limit}")
        if not value.isprintable():
            raise InvalidArgumentError(f"{name} must be printable text (no control characters)")


def _check_sizes(spec: RequestSpec) -> None:
    for name, value, low, high in (
        ("cpu_millicores", spec.cpu_millicores, 1, CPU_MILLICORES_MAX),
        ("run_seconds", spec.run_seconds, 1, DEADLINE_AHEAD_SECONDS_MAX),
        ("storage_mb", spec.storage_mb, 1, STORAGE_MB_MAX),
        ("input_mb", spec.input_mb, 0, TRANSFER_MB_MAX),
        ("output_mb", spec.output_mb, 0, TRANSFER_MB_MAX),
    ):
        if value < low:
            raise InvalidArgumentError(f"{name} is {value:,}; it must be at least {low}")
        if value > high:
            raise InvalidArgumentError(f"{name} {value:,} is above the maximum {high:,}")


def _when(seconds: int) -> str:
    """RFC 3339 of `seconds`, or the raw number when no calendar date has it."""
    try:
        return rfc3339(seconds)
    except (ValueError, OverflowError, OSError):
        return f"{seconds:,} s after 1970"


def _check_window(spec: RequestSpec, now_s: int) -> RequestSpec:
    if spec.deadline <= 0:
        raise InvalidArgumentError("deadline is required: the instant the result must be down by")
    if spec.not_before < 0:
        raise InvalidArgumentError("not_before must not be before 1970")
    if spec.not_before == 0:
        spec = replace(spec, not_before=now_s)
    not_before, deadline = spec.not_before, spec.deadline
    if deadline <= not_before:
        raise InvalidArgumentError(
            f"deadline {_when(deadline)} is not after not_before {_when(not_before)}"
        )
    window = deadline - not_before
    if spec.run_seconds > window:
        raise InvalidArgumentError(
            f"run_seconds {spec.run_seconds:,} is longer than the window from not_before to"
            f" deadline ({window:,} s)"
        )
    if deadline <= now_s:
        raise InvalidArgumentError(
            f"deadline {_when(deadline)} has passed (the broker's time is {_when(now_s)})"
        )
    if deadline - now_s > DEADLINE_AHEAD_SECONDS_MAX:
        raise InvalidArgumentError(
            f"deadline {_when(deadline)} is more than {DEADLINE_AHEAD_SECONDS_MAX // 86_400}"
            f" days ahead of the broker's time {_when(now_s)}"
        )
    left = deadline - max(now_s, not_before)
    if spec.run_seconds > left:
        raise InvalidArgumentError(
            f"the run of {spec.run_seconds:,} s no longer fits before the deadline: only"
            f" {left:,} s are left from {_when(max(now_s, not_before))}"
        )
    return spec


def _check_selector_shapes(spec: RequestSpec) -> None:
    if len(spec.node_labels) > LABELS_MAX:
        raise InvalidArgumentError(
            f"node_labels has {len(spec.node_labels)} labels; at most {LABELS_MAX}"
        )
    problems = label_problems(spec.node_labels)
    if problems:
        raise InvalidArgumentError("node_labels: " + "; ".join(problems))
    for name, items in (
        ("node_ids", spec.node_ids),
        ("station_ids", spec.station_ids),
        ("station_countries", spec.station_countries),
    ):
        if len(items) > SELECTOR_ITEMS_MAX:
            raise InvalidArgumentError(
                f"{name} has {len(items)} items; at most {SELECTOR_ITEMS_MAX}"
            )
        for item in items:
            if not item or len(item) > ID_LENGTH_MAX or not item.isprintable():
                raise InvalidArgumentError(
                    f"{name}: {item[:40]!r} is not an id (1-{ID_LENGTH_MAX} printable characters)"
                )
    unknown = [code for code in spec.station_countries if code not in ISO_COUNTRIES]
    if unknown:
        raise InvalidArgumentError(
            f"station_countries: {', '.join(repr(c[:8]) for c in unknown[:UNKNOWN_IDS_SHOWN_MAX])}"
            " is not an ISO 3166-1 alpha-2 country code (e.g. NO, CL, ZA)"
        )


# -- the spec against the world ------------------------------------------------------------------


def check_selectors(spec: RequestSpec, catalog: Catalog) -> None:
    """Node and station ids the spec names must exist (InvalidArgumentError naming them)."""
    known_nodes = {node.id for node in catalog.nodes}
    for name, items, known, hint in (
        ("node_ids", spec.node_ids, known_nodes, "orbitq node list"),
        ("station_ids", spec.station_ids, catalog.stations, "orbitq station list"),
    ):
        unknown = [item for item in items if item not in known]
        if unknown:
            shown = ", ".join(repr(item) for item in unknown[:UNKNOWN_IDS_SHOWN_MAX])
            more = len(unknown) - UNKNOWN_IDS_SHOWN_MAX
            tail = f" and {more} more" if more > 0 else ""
            raise InvalidArgumentError(
                f"{name}: unknown {name.split('_')[0]} {shown}{tail}; see `{hint}`"
            )


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The nodes a request may use (selectors and size), or why there are none."""

    nodes: tuple[CatalogNode, ...]
    reason: str = ""


def eligible(spec: RequestSpec, catalog: Catalog) -> Eligibility:
    wanted_ids = set(spec.node_ids)
    selected = [
        node
        for node in catalog.nodes
        if (not wanted_ids or node.id in wanted_ids)
        and all(node.labels.get(key) == value for key, value in spec.node_labels.items())
    ]
    if not selected:
        return Eligibility((), REASON_NO_NODE)
    countries, ids = set(spec.station_countries), set(spec.station_ids)
    if not any(
        (not ids or station in ids) and (not countries or country in countries)
        for station, country in catalog.stations.items()
    ):
        return Eligibility((), REASON_NO_STATION)
    fitting = tuple(
        node
        for node in selected
        if spec.cpu_millicores <= node.cpu_millicores and spec.storage_mb <= node.storage_mb
    )
    if fitting:
        return Eligibility(fitting)
    largest_cpu = max(node.cpu_millicores for node in selected)
    if spec.cpu_millicores > largest_cpu:
        return Eligibility(
            (),
            f"cpu larger than every node: {spec.cpu_millicores:,} millicores asked, the largest"
            f" node the request may use has {largest_cpu:,}",
        )
    largest_storage = max(
        node.storage_mb for node in selected if node.cpu_millicores >= spec.cpu_millicores
    )
    return Eligibility(
        (),
        f"storage larger than every node: {spec.storage_mb:,} MB asked, the largest node the"
        f" request may use (with enough cpu) has {largest_storage:,}",
    )


# -- cost ----------------------------------------------------------------------------------------


def quote_for(spec: RequestSpec, nodes: Sequence[CatalogNode]) -> QuoteResult:
    """The cost range over `nodes` (non-empty): the maximum is the worst case of any node, the
    minimum the best case of any node."""
    assert nodes
    request = spec.request("quote", "quote", 0)
    rates = sorted({(node.downlink_mbps, node.uplink_mbps) for node in nodes})
    quotes = [quote(request, downlink_mbps=down, uplink_mbps=up) for down, up in rates]
    maximum = _combine([q.maximum for q in quotes], max)
    minimum = _combine([q.minimum for q in quotes], min)
    return QuoteResult(maximum, minimum, _explain(spec, quotes, rates, maximum, minimum))


def _combine(costs: Sequence[Cost], pick: Callable[[Iterable[int]], int]) -> Cost:
    return Cost(
        cpu=pick(c.cpu for c in costs),
        storage=pick(c.storage for c in costs),
        link=pick(c.link for c in costs),
    )


def _explain(
    spec: RequestSpec,
    quotes: Sequence[Quote],
    rates: Sequence[tuple[int, int]],
    maximum: Cost,
    minimum: Cost,
) -> str:
    window = spec.deadline - spec.not_before
    slowest = min(down for down, _ in rates)
    parts = [
        f"cpu {maximum.cpu:,} core-seconds = ceil({spec.cpu_millicores:,} millicores x"
        f" {spec.run_seconds:,} s / 1000)",
        f"storage at most {maximum.storage:,} MB-hours ({spec.storage_mb:,} MB held over the"
        f" whole {window:,} s window), at least {minimum.storage:,} (held only for the run and"
        " the downlink)",
    ]
    if spec.output_mb or spec.input_mb:
        link = f"link at most {maximum.link:,} s"
        if spec.output_mb:
            down = downlink_seconds(spec.output_mb, slowest)
            link += f" ({spec.output_mb:,} MB down takes {down:,} s at {slowest:,} Mbit/s"
            link += ", the slowest node it may use)" if len(quotes) > 1 else ")"
        link += f", at least {minimum.link:,} s"
        parts.append(link)
    else:
        parts.append("link 0 s (no input or output)")
    return "; ".join(parts)
