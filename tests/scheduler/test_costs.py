"""Token costs (brief §2) and link seconds, with their rounding."""

from __future__ import annotations

import pytest

from orbitq.services.scheduler import (
    Cost,
    DownlinkSegment,
    Placement,
    Request,
    Uplink,
    downlink_seconds,
    placement_cost,
    quote,
    uplink_seconds,
)


@pytest.mark.parametrize(
    ("megabytes", "mbps", "down", "up"),
    [
        (0, 100, 0, 1),  # no output: no downlink; the ticket still takes a second up
        (1, 100, 1, 1),  # 8 Mb at 100 Mb/s = 0.08 s, rounded up
        (100, 100, 8, 8),
        (101, 100, 9, 9),  # 8.08 s
        (125, 1000, 1, 1),
        (126, 1000, 2, 2),
    ],
)
def test_link_seconds_round_up(megabytes: int, mbps: int, down: int, up: int) -> None:
    assert downlink_seconds(megabytes, mbps) == down
    assert uplink_seconds(megabytes, mbps) == up


def _request(input_mb: int = 10) -> Request:
    return Request(
        id="r",
        tenant="t",
        cpu_millicores=1500,
        run_seconds=601,
        storage_mb=500,
        input_mb=input_mb,
        output_mb=200,
        not_before=0,
        deadline=7200,
    )


def test_quote_ranges_from_the_shortest_to_the_longest_hold() -> None:
    q = quote(_request(), downlink_mbps=100, uplink_mbps=10)
    # cpu: ceil(1500 * 601 / 1000) = ceil(901.5) = 902
    # link: down ceil(1600 / 100) = 16, up ceil(80 / 10) = 8 (there is input)
    # storage min: ceil(500 * (601 + 16) / 3600) = ceil(85.69) = 86; max: 500 * 7200 / 3600
    assert q.minimum == Cost(cpu=902, storage=86, link=24)
    assert q.maximum == Cost(cpu=902, storage=1000, link=24)


def test_the_ticket_uplink_alone_is_not_charged() -> None:
    q = quote(_request(input_mb=0), downlink_mbps=100, uplink_mbps=10)
    assert q.minimum.link == 16


def test_placement_cost_holds_storage_until_the_last_segment() -> None:
    placement = Placement(
        request="r",
        node="n",
        start=100,
        end=701,
        uplink=Uplink("c0", "s", 50, 58),
        downlink=(DownlinkSegment("c1", "s", 1000, 1010), DownlinkSegment("c2", "s", 3000, 3006)),
    )
    # held 3006 - 100 = 2906 s: ceil(500 * 2906 / 3600) = ceil(403.6) = 404
    assert placement_cost(_request(), placement) == Cost(cpu=902, storage=404, link=24)
    assert placement.finish == 3006
    assert placement.downlink_seconds == 16
