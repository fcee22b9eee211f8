"""Table-driven tests of each plugin: the status code, plugin and reason string it returns."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orbitq.services.scheduler import Contact, Node, Request, Station
from orbitq.services.scheduler.framework import (
    SUCCESS,
    Booking,
    Code,
    Draft,
    RequestContext,
    Segment,
    Status,
)
from orbitq.services.scheduler.plugins import (
    capacity,
    deadline,
    downlink,
    earliest_completion,
    in_time,
    just_in_time,
    node_resources,
    node_selector,
    node_state,
    packing,
    station_antennas,
    station_selector,
    storage_hold,
    uplink,
)
from orbitq.services.scheduler.world import World

N1 = Node("n1", 4000, 1000, 80, 8, labels={"plane": "a"})
N2 = Node("n2", 2000, 500, 80, 8, labels={"plane": "b"})
S1 = Station("s1", 1, {"country": "NO"})
S2 = Station("s2", 2, {"country": "US"})
CONTACTS = [
    Contact("up1", "n1", "s1", 0, 100),
    Contact("down1", "n1", "s2", 1000, 1100),
    Contact("up2", "n2", "s2", 0, 100),
    Contact("later", "n2", "s2", 2500, 2600),  # contacts are known past the deadlines
]
REQUEST = Request(
    "r1",
    "t1",
    cpu_millicores=1000,
    run_seconds=300,
    storage_mb=100,
    input_mb=10,
    output_mb=500,
    not_before=0,
    deadline=1300,
)  # uplink 10 s, downlink 50 s at these rates; the uplink must end by 1300 - 350 = 950


def world(contacts: list[Contact] | None = None, nodes: list[Node] | None = None) -> World:
    built = World(nodes or [N1, N2], [S1, S2])
    built.add_contacts(CONTACTS if contacts is None else contacts)
    return built


def context(w: World, request: Request = REQUEST, now: int = 0) -> RequestContext:
    ctx = RequestContext(request=request, now=now, world=w, earliest=max(now, request.not_before))
    # The allowed stations as the station selector sets them, without its narrowing (tested
    # on its own, it would turn away requests these tests send to the fits' own refusals).
    ctx.allowed_stations = w.stations_mask(request.station_ids, request.station_countries)
    assert ctx.allowed_stations
    return ctx


def draft(w: World, node: int = 0, request: Request = REQUEST, start_min: int = 0) -> Draft:
    return Draft(w.nodes[node], request.run_seconds, 10, 50, start_min)


def fail(code: Code, plugin: str, reason: str) -> Status:
    return Status(code, plugin, reason)


U, X = Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("ready", SUCCESS),
        ("degraded", fail(U, node_state.NAME, node_state.REASON_DEGRADED)),
        ("down", fail(U, node_state.NAME, node_state.REASON_DOWN)),
    ],
)
def test_node_state(state: str, expected: Status) -> None:
    w = world(nodes=[replace(N1, state=state), N2])  # type: ignore[arg-type]
    assert node_state.NodeStatePlugin().filter(context(w), w.nodes[0]) == expected


@pytest.mark.parametrize(
    ("selector", "pre", "candidates", "filtered"),
    [
        ({}, SUCCESS, None, [SUCCESS, SUCCESS]),
        ({"node_labels": {"plane": "b"}}, SUCCESS, [1], None),
        ({"node_ids": ("n1", "n9")}, SUCCESS, [0], None),
        (
            {"node_labels": {"plane": "a"}, "node_ids": ("n2",)},
            fail(X, node_selector.NAME, node_selector.REASON_NO_NODE),
            None,
            None,
        ),
        (
            {"node_labels": {"plane": "z"}},
            fail(X, node_selector.NAME, node_selector.REASON_NO_NODE),
            None,
            None,
        ),
    ],
)
def test_node_selector_pre_filter(
    selector: dict[str, object],
    pre: Status,
    candidates: list[int] | None,
    filtered: list[Status] | None,
) -> None:
    w = world()
    ctx = context(w, replace(REQUEST, **selector))  # type: ignore[arg-type]
    plugin = node_selector.NodeSelectorPlugin()
    assert plugin.pre_filter(ctx) == pre
    assert ctx.candidates == candidates
    if filtered is not None:
        assert [plugin.filter(ctx, node) for node in w.nodes] == filtered


def test_node_selector_filter_without_narrowing() -> None:
    w = world()
    ctx = context(w, replace(REQUEST, node_labels={"plane": "b"}))
    mismatch = fail(X, node_selector.NAME, node_selector.REASON_MISMATCH)
    plugin = node_selector.NodeSelectorPlugin()
    assert [plugin.filter(ctx, node) for node in w.nodes] == [mismatch, SUCCESS]
    ctx = context(w, replace(REQUEST, node_ids=("n1",)))
    assert [plugin.filter(ctx, node) for node in w.nodes] == [SUCCESS, mismatch]


@pytest.mark.parametrize(
    ("cpu", "storage", "pre", "per_node"),
    [
        (1000, 100, SUCCESS, [SUCCESS, SUCCESS]),
        (3000, 100, SUCCESS, [SUCCESS, fail(X, node_resources.NAME, node_resources.REASON_CPU)]),
        (
            1000,
            800,
            SUCCESS,
            [SUCCESS, fail(X, node_resources.NAME, node_resources.REASON_STORAGE)],
        ),
        (5000, 100, fail(X, node_resources.NAME, node_resources.REASON_CPU_EVERY_NODE), None),
        (1000, 5000, fail(X, node_resources.NAME, node_resources.REASON_STORAGE_EVERY_NODE), None),
    ],
)
def test_node_resources(cpu: int, storage: int, pre: Status, per_node: list[Status] | None) -> None:
    w = world()
    ctx = context(w, replace(REQUEST, cpu_millicores=cpu, storage_mb=storage))
    plugin = node_resources.NodeResourcesPlugin()
    assert plugin.pre_filter(ctx) == pre
    if per_node is not None:
        assert [plugin.filter(ctx, node) for node in w.nodes] == per_node


@pytest.mark.parametrize(
    ("now", "deadline_at", "expected"),
    [
        (0, 2000, SUCCESS),
        (0, 360, SUCCESS),  # 10 s up + 300 s run + 50 s down exactly
        (1, 360, fail(X, deadline.NAME, deadline.REASON_UNMEETABLE)),
        (1700, 2000, fail(X, deadline.NAME, deadline.REASON_UNMEETABLE)),
    ],
)
def test_deadline(now: int, deadline_at: int, expected: Status) -> None:
    w = world()
    ctx = context(w, replace(REQUEST, deadline=deadline_at), now=now)
    assert deadline.DeadlinePlugin().pre_filter(ctx) == expected


@pytest.mark.parametrize(
    ("countries", "ids", "deadline_at", "pre", "per_node"),
    [
        ((), (), 2000, SUCCESS, [SUCCESS, SUCCESS]),
        (
            ("NO",),
            (),
            2000,
            SUCCESS,
            [SUCCESS, fail(X, station_selector.NAME, station_selector.REASON_NO_ALLOWED_CONTACT)],
        ),
        (
            ("NO",),
            (),
            5000,
            SUCCESS,  # contacts are not known that far: may still come
            [SUCCESS, fail(U, station_selector.NAME, station_selector.REASON_NO_ALLOWED_CONTACT)],
        ),
        ((), ("s2",), 2000, SUCCESS, [SUCCESS, SUCCESS]),
        (
            ("FR",),
            (),
            2000,
            fail(X, station_selector.NAME, station_selector.REASON_NO_STATION),
            None,
        ),
        (
            ("NO",),
            ("s2",),
            2000,
            fail(X, station_selector.NAME, station_selector.REASON_NO_STATION),
            None,
        ),
    ],
)
def test_station_selector(
    countries: tuple[str, ...],
    ids: tuple[str, ...],
    deadline_at: int,
    pre: Status,
    per_node: list[Status] | None,
) -> None:
    w = world()
    # No output: the stations alone decide (the downlink window's narrowing has its own test).
    request = replace(
        REQUEST, station_countries=countries, station_ids=ids, deadline=deadline_at, output_mb=0
    )
    ctx = RequestContext(request=request, now=0, world=w, earliest=0)
    plugin = station_selector.StationSelectorPlugin()
    assert plugin.pre_filter(ctx) == pre
    if per_node is not None:
        assert [plugin.filter(ctx, node) for node in w.nodes] == per_node


def _busy(w: World, station: int, start: int, end: int, times: int = 1) -> None:
    w.stations[station].antennas.add(start, end, times)


# Every refusal path of the link plugins, each under the plugin's own name: no contact at all,
# none at an allowed station (each final once the known contacts cover the window, else it may
# change), or the antennas busy. The deadline of 5,000 lies past the known contacts (2,600).
MID = Contact("mid", "n1", "s1", 500, 600)  # an allowed (NO) contact after the soonest run


@pytest.mark.parametrize(
    ("contacts", "countries", "deadline_at", "busy", "expected"),
    [
        (CONTACTS, (), 1300, None, SUCCESS),
        ([CONTACTS[3]], (), 1300, None, fail(X, uplink.NAME, uplink.REASON_NO_CONTACT)),
        ([CONTACTS[3]], (), 5000, None, fail(U, uplink.NAME, uplink.REASON_NO_CONTACT)),
        (CONTACTS[1:], (), 1300, None, fail(X, uplink.NAME, uplink.REASON_NO_CONTACT)),
        (CONTACTS, ("US",), 1300, None, fail(X, uplink.NAME, uplink.REASON_NO_ALLOWED_CONTACT)),
        (
            [CONTACTS[0], CONTACTS[3]],
            ("US",),
            5000,
            None,
            fail(U, uplink.NAME, uplink.REASON_NO_ALLOWED_CONTACT),
        ),
        (CONTACTS, (), 1300, (0, 0, 100), fail(U, uplink.NAME, uplink.REASON_ANTENNAS_BUSY)),
    ],
)
def test_uplink(
    contacts: list[Contact],
    countries: tuple[str, ...],
    deadline_at: int,
    busy: tuple[int, int, int] | None,
    expected: Status,
) -> None:
    w = world(contacts)
    if busy:
        _busy(w, *busy)
    request = replace(REQUEST, station_countries=countries, deadline=deadline_at)
    ctx = context(w, request)
    d = draft(w, request=request)
    status = uplink.UplinkPlugin().fit(ctx, d)
    assert status == expected
    if expected.ok:
        assert d.uplink == Segment("up1", 0, 0, 10)
        assert d.start_min == 10
    else:
        assert status.plugin == uplink.NAME


def test_uplink_skips_a_busy_stretch() -> None:
    w = world()
    _busy(w, 0, 0, 40)
    w.nodes[0].radio.add(45, 50, 1)  # the node's radio is busy too
    d = draft(w)
    assert uplink.UplinkPlugin().fit(context(w), d) == SUCCESS
    assert d.uplink == Segment("up1", 0, 50, 60)


@pytest.mark.parametrize(
    ("cpu_busy", "storage_busy", "expected", "start"),
    [
        (None, None, SUCCESS, 10),
        ((0, 500, 3500), None, SUCCESS, 500),
        ((0, 2000, 3500), None, fail(U, capacity.NAME, capacity.REASON_CPU), None),
        (None, (0, 2000, 950), fail(U, capacity.NAME, capacity.REASON_STORAGE), None),
        ((0, 200, 3500), (0, 700, 950), SUCCESS, 700),
    ],
)
def test_capacity_fit(
    cpu_busy: tuple[int, int, int] | None,
    storage_busy: tuple[int, int, int] | None,
    expected: Status,
    start: int | None,
) -> None:
    w = world()
    if cpu_busy:
        w.nodes[0].cpu.add(*cpu_busy)
    if storage_busy:
        w.nodes[0].storage.add(*storage_busy)
    d = draft(w, start_min=10)
    assert capacity.CapacityPlugin().fit(context(w), d) == expected
    if start is not None:
        assert d.start == start


@pytest.mark.parametrize(
    ("contacts", "countries", "start", "busy", "expected"),
    [
        (CONTACTS, (), 10, None, SUCCESS),
        (
            [CONTACTS[0], CONTACTS[3]],
            (),
            10,
            None,
            fail(X, downlink.NAME, downlink.REASON_NO_CONTACT),
        ),
        # The run ends after the last contact before the deadline; a sooner run would not.
        (CONTACTS, (), 900, None, fail(U, downlink.NAME, downlink.REASON_NO_CONTACT)),
        (
            CONTACTS,
            ("NO",),
            10,
            None,
            fail(X, downlink.NAME, downlink.REASON_NO_ALLOWED_CONTACT),
        ),
        (
            [*CONTACTS, MID],
            ("NO",),
            400,
            None,
            fail(U, downlink.NAME, downlink.REASON_NO_ALLOWED_CONTACT),
        ),
        (
            CONTACTS,
            (),
            10,
            (1, 1000, 1100, 2),
            fail(U, downlink.NAME, downlink.REASON_ANTENNAS_BUSY),
        ),
    ],
)
def test_downlink(
    contacts: list[Contact],
    countries: tuple[str, ...],
    start: int,
    busy: tuple[int, int, int, int] | None,
    expected: Status,
) -> None:
    w = world(contacts)
    if busy:
        _busy(w, *busy)
    ctx = context(w, replace(REQUEST, station_countries=countries))
    d = draft(w)
    d.start = start
    status = downlink.DownlinkPlugin().fit(ctx, d)
    assert status == expected
    if expected.ok:
        assert d.downlink == [Segment("down1", 1, 1000, 1050)]
        assert d.finish == 1050
    else:
        assert status.plugin == downlink.NAME


def test_downlink_fills_gaps_and_reports_fragmentation() -> None:
    w = world()
    for start in range(1000, 1100, 20):  # both antennas busy 10 s of every 20
        _busy(w, 1, start + 10, start + 20, 2)
    d = draft(w)
    d.start = 10
    assert downlink.DownlinkPlugin().fit(context(w), d) == SUCCESS
    assert [(s.start, s.end) for s in d.downlink] == [
        (1000, 1010),
        (1020, 1030),
        (1040, 1050),
        (1060, 1070),
        (1080, 1090),
    ]
    many = [Contact(f"d{i}", "n1", "s2", 1000 + 20 * i, 1010 + 20 * i) for i in range(40)]
    w = world([CONTACTS[0], CONTACTS[3], *many])
    request = replace(REQUEST, output_mb=2000, deadline=2000)
    d = draft(w, request=request)
    d.down_seconds = 200  # 20 pieces of 10 s, over DOWNLINK_SEGMENTS_MAX
    d.start = 10
    assert downlink.DownlinkPlugin().fit(context(w, request), d) == fail(
        U, downlink.NAME, downlink.REASON_FRAGMENTED
    )


def test_downlink_is_resolvable_when_the_run_could_end_sooner() -> None:
    w = world()
    d = draft(w)
    d.start = 1000  # pushed late (e.g. by cpu); from the soonest end there is contact time
    assert downlink.DownlinkPlugin().fit(context(w), d) == fail(
        U, downlink.NAME, downlink.REASON_NO_CONTACT
    )


def test_storage_hold_moves_the_start_past_a_busy_stretch() -> None:
    w = world()
    w.nodes[0].storage.add(500, 600, 950)
    d = draft(w)
    d.start, d.finish = 10, 1050
    assert storage_hold.StorageHoldPlugin().fit(context(w), d) == SUCCESS
    assert (d.start, d.start_min, d.invalidations) == (-1, 600, 1)
    d = draft(w)
    d.start, d.finish = 700, 1050
    assert storage_hold.StorageHoldPlugin().fit(context(w), d) == SUCCESS
    assert d.invalidations == 0


@pytest.mark.parametrize(
    ("cpu_busy", "downlink_at", "expected_start"),
    [
        (None, 1000, 700),  # ends exactly when the first segment begins
        ((600, 900, 3500), 1000, 300),  # the latest start whose run avoids the busy cpu
        ((310, 1000, 3500), 1000, 10),  # cannot move: stays where it fitted
        (None, None, 10),  # no downlink: nothing to wait for
    ],
)
def test_just_in_time(
    cpu_busy: tuple[int, int, int] | None, downlink_at: int | None, expected_start: int
) -> None:
    w = world()
    if cpu_busy:
        w.nodes[0].cpu.add(*cpu_busy)
    d = draft(w)
    d.start, d.finish = 10, 1050
    if downlink_at is not None:
        d.downlink = [Segment("down1", 1, downlink_at, downlink_at + 50)]
    assert just_in_time.JustInTimePlugin().fit(context(w), d) == SUCCESS
    assert d.start == expected_start


def _booking(request: Request = REQUEST) -> Booking:
    return Booking(
        request=request,
        node=0,
        start=10,
        end=310,
        finish=1050,
        uplink=Segment("up1", 0, 0, 10),
        downlink=(Segment("down1", 1, 1000, 1050),),
    )


def test_capacity_reserve_checks_first_and_unreserve_is_idempotent() -> None:
    w = world()
    plugin = capacity.CapacityPlugin()
    w.nodes[0].storage.add(1000, 1001, 950)
    assert plugin.reserve(w, _booking()) == fail(U, capacity.NAME, capacity.REASON_STORAGE)
    assert w.nodes[0].cpu.times == []
    w.nodes[0].storage.add(1000, 1001, -950)
    assert plugin.reserve(w, _booking()) == SUCCESS
    assert w.nodes[0].cpu.level_at(10) == 1000
    assert w.nodes[0].storage.level_at(1049) == 100
    plugin.unreserve(w, _booking())
    plugin.unreserve(w, _booking())
    assert (w.nodes[0].cpu.times, w.nodes[0].storage.times) == ([], [])


@pytest.mark.parametrize(
    ("station_busy", "radio_busy", "expected"),
    [
        (None, None, SUCCESS),
        ((0, 5, 6), None, fail(U, station_antennas.NAME, station_antennas.REASON_BUSY)),
        (None, (1040, 1041), fail(U, station_antennas.NAME, station_antennas.REASON_RADIO_BUSY)),
    ],
)
def test_station_antennas_reserve(
    station_busy: tuple[int, int, int] | None,
    radio_busy: tuple[int, int] | None,
    expected: Status,
) -> None:
    w = world()
    if station_busy:
        _busy(w, *station_busy)
    if radio_busy:
        w.nodes[0].radio.add(*radio_busy, 1)
    before = (list(w.stations[1].antennas.times), list(w.nodes[0].radio.times))
    plugin = station_antennas.StationAntennasPlugin()
    assert plugin.reserve(w, _booking()) == expected
    if not expected.ok:
        assert (w.stations[1].antennas.times, w.nodes[0].radio.times) == before
        return
    assert w.stations[0].antennas.level_at(5) == 1
    assert w.nodes[0].radio.level_at(1049) == 1
    plugin.unreserve(w, _booking())
    plugin.unreserve(w, _booking())
    assert w.stations[0].antennas.times == w.nodes[0].radio.times == []


def test_scores() -> None:
    w = world()
    drafts = [draft(w, 0), draft(w, 1), draft(w, 0)]
    for d, finish in zip(drafts, (1000, 2000, 1250), strict=True):
        d.start, d.finish = 10, finish
    ctx = context(w)
    assert earliest_completion.EarliestCompletionPlugin().score(ctx, drafts) == [100, 0, 75]
    assert earliest_completion.EarliestCompletionPlugin().score(ctx, drafts[:1]) == [100]
    w.nodes[0].cpu.add(0, 100, 3000)
    # n1: cpu (3000 + 1000) / 4000 = 100 %, storage 100 / 1000 = 10 % -> 55
    # n2: cpu 1000 / 2000 = 50 %, storage 100 / 500 = 20 % -> 35
    assert packing.PackingPlugin().score(ctx, drafts[:2]) == [55, 35]


@pytest.mark.parametrize(
    ("countries", "busy", "expected"),
    [
        ((), None, SUCCESS),
        (("NO",), None, SUCCESS),
        # s1 (NO) has one antenna: taken all window long, no node can uplink or downlink there
        (("NO",), [(0, 0, 5000)], fail(U, station_antennas.NAME, station_antennas.REASON_BUSY)),
        # uplink possible before 100, but nothing free after the soonest end of the run
        (("NO",), [(0, 100, 5000)], fail(U, station_antennas.NAME, station_antennas.REASON_BUSY)),
        # with s2 (US) free as well, the stations cannot rule the request out
        ((), [(0, 0, 5000)], SUCCESS),
    ],
)
def test_station_antennas_pre_filter(
    countries: tuple[str, ...], busy: list[tuple[int, int, int]] | None, expected: Status
) -> None:
    w = world()
    for station, start, end in busy or []:
        _busy(w, station, start, end)
    ctx = context(w, replace(REQUEST, station_countries=countries))
    assert station_antennas.StationAntennasPlugin().pre_filter(ctx) == expected


def test_station_selector_narrows_to_nodes_in_contact_during_the_window() -> None:
    w = world()
    plugin = station_selector.StationSelectorPlugin()
    no_output = replace(REQUEST, station_countries=("NO",), output_mb=0)
    ctx = RequestContext(request=no_output, now=0, world=w, earliest=0)
    assert plugin.pre_filter(ctx) == SUCCESS
    assert ctx.candidates == [0]  # only n1 is ever in contact with s1 (NO)
    assert ctx.narrowed_by == station_selector.NAME
    late = replace(
        REQUEST,
        station_countries=("US",),
        not_before=1200,
        deadline=2600,
        run_seconds=50,
        output_mb=0,
    )
    ctx = RequestContext(request=late, now=0, world=w, earliest=1200)
    assert plugin.pre_filter(ctx) == SUCCESS
    assert ctx.candidates == [1]  # n1's US pass ended at 1100; n2's comes at 2500
    assert w.nodes_in_contact(0b10, 1200, 2550, budget=0) is None  # over budget: no answer
    hopeless = replace(late, run_seconds=200)  # the uplink must end by 2400: no US pass then
    ctx = RequestContext(request=hopeless, now=0, world=w, earliest=1200)
    assert plugin.pre_filter(ctx) == fail(
        X, station_selector.NAME, station_selector.REASON_NO_ALLOWED_CONTACT
    )


def test_station_selector_narrows_by_the_downlink_window_too() -> None:
    """A node in contact while the uplink can happen but never again before the deadline
    (the output must come down at an allowed station too) is not a candidate."""
    w = world()
    plugin = station_selector.StationSelectorPlugin()
    # n1 sees NO only at 0-100: the output (50 s) cannot come down after a 300 s run.
    ctx = RequestContext(
        request=replace(REQUEST, station_countries=("NO",)), now=0, world=w, earliest=0
    )
    assert plugin.pre_filter(ctx) == fail(
        X, station_selector.NAME, station_selector.REASON_NO_ALLOWED_CONTACT
    )
    # US, run 100 s, by 1300: n1 (up at 1000-1100, no US pass after its run) and n2 (up at
    # 0-100, no US pass again until 2500) both lack the downlink's pass.
    us = replace(REQUEST, station_countries=("US",), run_seconds=100)
    ctx = RequestContext(request=us, now=0, world=w, earliest=0)
    assert plugin.pre_filter(ctx) == fail(
        X, station_selector.NAME, station_selector.REASON_NO_ALLOWED_CONTACT
    )
    # With the deadline at the end of n2's later pass, n2 fits (up at 0-100, down at
    # 2500-2600); n1 still lacks a US pass after its run.
    ctx = RequestContext(request=replace(us, deadline=2600), now=0, world=w, earliest=0)
    assert plugin.pre_filter(ctx) == SUCCESS
    assert ctx.candidates == [1]


def test_in_time_turns_away_nodes_whose_contacts_leave_no_room_under_the_fits_names() -> None:
    """n1 has its uplink (0-100) and a later pass (US, 1000-1100) for the downlink; n2's only
    pass after its uplink comes at 2500, after the deadline of 1300."""
    w = world()
    plugin = in_time.InTimePlugin()
    ctx = context(w)
    assert [plugin.filter(ctx, node) for node in w.nodes] == [
        SUCCESS,
        fail(X, downlink.NAME, downlink.REASON_NO_CONTACT),
    ]
    ctx = context(w, replace(REQUEST, station_countries=("NO",)))
    assert [plugin.filter(ctx, node) for node in w.nodes] == [
        fail(X, downlink.NAME, downlink.REASON_NO_ALLOWED_CONTACT),  # NO only at 0-100
        fail(X, uplink.NAME, uplink.REASON_NO_ALLOWED_CONTACT),  # never sees NO
    ]
    ctx = context(w, replace(REQUEST, deadline=2600))  # n2's later pass is in time now
    assert [plugin.filter(ctx, node) for node in w.nodes] == [SUCCESS, SUCCESS]


def test_in_time_checks_only_requests_with_little_slack_and_contacts_known() -> None:
    far = Contact("far", "n1", "s2", 9000, 9100)
    w = world([*CONTACTS, far])
    plugin = in_time.InTimePlugin()
    # n2 has no contact after 2700, but with 6,040 s of slack the check is skipped.
    loose = replace(REQUEST, not_before=2700, deadline=9100)
    assert plugin.filter(context(w, loose), w.nodes[1]) == SUCCESS
    tight = replace(loose, deadline=2700 + 360 + in_time.IN_TIME_SLACK_SECONDS - 1)
    assert plugin.filter(context(w, tight), w.nodes[1]) == fail(
        X, uplink.NAME, uplink.REASON_NO_CONTACT
    )
    # Deadline past the known contacts (2,600): more may come, no refusal can be final.
    unknown = replace(REQUEST, deadline=5000)
    known = world()
    assert plugin.filter(context(known, unknown), known.nodes[1]) == SUCCESS
