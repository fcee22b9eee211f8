"""A spec on its own and against a small catalog: each bad input gets a message that names the
field and says what to do; eligibility and the quote's worst case. Pure: no database."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from orbitq.services.errors import InvalidArgumentError
from orbitq.services.requests import RequestSpec
from orbitq.services.requests.lifecycle import ALLOWED, CANCELLABLE, Move, allowed, due_s
from orbitq.services.requests.model import TERMINAL_STATES, RequestState
from orbitq.services.requests.spec import (
    Catalog,
    CatalogNode,
    check_selectors,
    eligible,
    normalize,
    quote_for,
    validate,
)
from orbitq.services.scheduler import Cost, Placement, Uplink, quote
from tests.requests.sky import HOUR, T0, spec

S = RequestState


def node(node_id: str, cpu: int = 4000, storage: int = 64_000, down: int = 100) -> CatalogNode:
    return CatalogNode(node_id, cpu, storage, down, 10, MappingProxyType({"shell": "53"}))


CATALOG = Catalog(
    (node("1"), node("2", cpu=8000, storage=1000, down=50)),
    MappingProxyType({"svalbard": "NO", "puntaarenas": "CL"}),
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "x" * 101}, "name is 101 characters; at most 100"),
        ({"workload": "w" * 501}, "workload is 501 characters; at most 500"),
        ({"name": "a\nb"}, "name must be printable"),
        ({"cpu_millicores": 0}, "cpu_millicores is 0; it must be at least 1"),
        ({"run_seconds": 0}, "run_seconds is 0; it must be at least 1"),
        ({"storage_mb": 0}, "storage_mb is 0; it must be at least 1"),
        ({"cpu_millicores": 2_000_000}, "cpu_millicores 2,000,000 is above the maximum"),
        ({"output_mb": 2_000_000_000}, "output_mb 2,000,000,000 is above the maximum"),
        ({"deadline": 0}, "deadline is required"),
        ({"deadline": T0 + HOUR, "not_before": T0 + 2 * HOUR}, "is not after not_before"),
        ({"run_seconds": 2 * HOUR, "deadline": T0 + HOUR}, "longer than the window"),
        ({"not_before": T0 - 2 * HOUR, "deadline": T0 - HOUR}, "has passed"),
        ({"deadline": T0 + 31 * 86_400}, "more than 30 days ahead"),
        ({"deadline": 2**45}, "35,184,372,088,832 s after 1970 is more than 30 days ahead"),
        (
            {"not_before": T0 - HOUR, "deadline": T0 + 300, "run_seconds": 600},
            "no longer fits before the deadline: only 300 s are left",
        ),
        ({"priority": 10}, "priority 10 is out of range: use 0 (lowest) to 9"),
        ({"node_labels": {"Bad Key": "x"}}, "label key 'Bad Key'"),
        ({"node_labels": {f"k{i}": "v" for i in range(33)}}, "at most 32"),
        ({"node_ids": tuple(str(i) for i in range(65))}, "node_ids has 65 items; at most 64"),
        ({"station_ids": ("",)}, "station_ids: '' is not an id"),
        ({"station_countries": ("XX",)}, "'XX' is not an ISO 3166-1 alpha-2 country code"),
        ({"station_countries": ("Norway",)}, "'NORWAY' is not an ISO 3166-1 alpha-2"),
    ],
)
def test_validation_names_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        validate(replace(spec(), **change), T0)  # type: ignore[arg-type]
    assert message in raised.value.message


def test_validation_resolves_and_normalizes() -> None:
    given = replace(
        spec(not_before=0),
        station_countries=("no", "NO", " cl "),
        node_ids=("44714", "44714"),
    )
    checked = validate(given, T0 + 5)
    assert checked.not_before == T0 + 5
    assert checked.station_countries == ("NO", "CL")
    assert checked.node_ids == ("44714",)
    # A retry without not_before asks for the same request; a different one does not.
    assert checked.same_as_retry(normalize(given))
    assert not checked.same_as_retry(replace(normalize(given), priority=3))
    assert RequestSpec.from_json(checked.to_json()) == checked


def test_unknown_ids_are_named() -> None:
    with pytest.raises(InvalidArgumentError, match=r"node_ids: unknown node '9'; see `orbitq"):
        check_selectors(replace(spec(), node_ids=("1", "9")), CATALOG)
    with pytest.raises(InvalidArgumentError, match=r"unknown station 'troll'"):
        check_selectors(replace(spec(), station_ids=("troll",)), CATALOG)
    check_selectors(replace(spec(), node_ids=("2",), station_ids=("svalbard",)), CATALOG)


def test_eligibility_and_its_reasons() -> None:
    assert [n.id for n in eligible(spec(), CATALOG).nodes] == ["1", "2"]
    assert [n.id for n in eligible(spec(storage=2000), CATALOG).nodes] == ["1"]  # 2 is small
    too_big = eligible(spec(cpu=9000), CATALOG)
    assert too_big.nodes == ()
    assert too_big.reason.startswith("cpu larger than every node: 9,000 millicores asked")
    assert "largest node the request may use has 8,000" in too_big.reason
    storage = eligible(spec(storage=100_000), CATALOG)
    assert storage.reason.startswith("storage larger than every node: 100,000 MB asked")
    labels = eligible(replace(spec(), node_labels={"shell": "70"}), CATALOG)
    assert labels.reason == "no node matches the node selector"
    stations = eligible(replace(spec(), station_countries=("ZA",)), CATALOG)
    assert stations.reason == "no station matches the station selector"


def test_the_reservation_is_the_worst_case_of_the_nodes_it_may_use() -> None:
    small = spec(cpu=1000, storage=500)
    result = quote_for(small, CATALOG.nodes)
    request = small.request("q", "q", 0)
    fast = quote(request, downlink_mbps=100, uplink_mbps=10)
    slow = quote(request, downlink_mbps=50, uplink_mbps=10)
    assert result.maximum == Cost(
        fast.maximum.cpu, fast.maximum.storage, max(fast.maximum.link, slow.maximum.link)
    )
    assert result.maximum.link == 32  # 200 MB at 50 Mbit/s
    assert result.minimum.link == 16  # at 100 Mbit/s
    assert result.maximum.storage == 3000  # 500 MB over the 6 h window
    assert "the slowest node it may use" in result.explanation


def test_the_transition_table() -> None:
    assert all(not ALLOWED.get(state) for state in TERMINAL_STATES)
    assert allowed(S.PLACED, S.PENDING)
    assert allowed(S.RUNNING, S.PENDING)
    assert not allowed(S.RUNNING, S.CANCELLED)
    assert not allowed(S.COMPLETED, S.CANCELLED)
    assert not allowed(S.PENDING, S.RUNNING)
    assert {S.SUBMITTED, S.PENDING, S.PLACED} == CANCELLABLE
    with pytest.raises(AssertionError):
        Move("r", frozenset({S.RUNNING}), S.CANCELLED, "no")
    with pytest.raises(AssertionError):
        Move("r", frozenset({S.PENDING}), S.PLACED, "a placement is required")
    placement = Placement("r", "1", 100, 200, Uplink("c", "s", 10, 11))
    assert due_s(S.PENDING, 500, None, True) == 500
    assert due_s(S.PLACED, 500, placement, True) == 100
    assert due_s(S.RUNNING, 500, placement, True) == 200
    assert due_s(S.CANCELLED, 500, None, True) == 0  # its release is owed
    assert due_s(S.CANCELLED, 500, None, False) is None
