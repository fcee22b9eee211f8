"""The simulator's workload: seeded, and every request it makes is one the request service
accepts as valid at the instant it arrives (hypothesis over seeds, sizes and horizons)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orbitq.ledger.model import Kind
from orbitq.services.requests.spec import validate
from orbitq.services.sim.workload import HOUR, PROFILES, generate

START = 1_765_065_660  # 2025-12-07T00:01:00Z
COUNTRIES = ("AU", "CL", "NO", "SE", "US", "ZA")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    count=st.integers(0, 120),
    hours=st.integers(2, 168),
    countries=st.lists(st.sampled_from(COUNTRIES), max_size=6, unique=True),
    downlink=st.integers(1, 1_000),
)
def test_every_request_is_valid_when_it_arrives(
    seed: int, count: int, hours: int, countries: list[str], downlink: int
) -> None:
    end = START + hours * HOUR
    workload = generate(seed, count, START, end, countries, downlink)
    assert len(workload.arrivals) == count
    assert [a.at for a in workload.arrivals] == sorted(a.at for a in workload.arrivals)
    assert len({a.idempotency_key for a in workload.arrivals}) == count
    for arrival in workload.arrivals:
        spec = arrival.spec
        assert START <= arrival.at < end
        assert arrival.at <= spec.not_before
        assert spec.deadline <= end
        assert validate(spec, arrival.at) == spec  # raises InvalidArgumentError if not
        assert set(spec.station_countries) <= set(countries)
    assert set(workload.minted) == {profile.name for profile in PROFILES}
    for amounts in workload.minted.values():
        assert all(amount > 0 for amount in amounts.values())


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**63 - 1))
def test_a_seed_gives_the_same_workload(seed: int) -> None:
    first = generate(seed, 50, START, START + 24 * HOUR, COUNTRIES, 100)
    assert generate(seed, 50, START, START + 24 * HOUR, COUNTRIES, 100) == first
    assert generate(seed + 1, 50, START, START + 24 * HOUR, COUNTRIES, 100) != first


def test_the_under_funded_tenant_is_minted_less_than_it_asks_for() -> None:
    workload = generate(5, 2_000, START, START + 24 * HOUR, COUNTRIES, 100)
    asked = sum(
        a.spec.cpu_millicores * a.spec.run_seconds // 1_000
        for a in workload.arrivals
        if a.tenant == "driftwood"
    )
    assert workload.minted["driftwood"][Kind.CPU] < asked
    rich = sum(
        a.spec.cpu_millicores * a.spec.run_seconds // 1_000
        for a in workload.arrivals
        if a.tenant == "aurora"
    )
    assert workload.minted["aurora"][Kind.CPU] >= rich
