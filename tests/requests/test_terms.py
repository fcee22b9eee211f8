"""Cancellation terms (orbitq.services.requests.terms) as rules, and their two config.toml keys.

Properties: cancelling is free before the cut-off and costs exactly the fee from it on; the
fee is link only, never more than the link reserved, grows with the share, and is the whole
link cost of the placement at 100 %."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitq.services.config import load_config
from orbitq.services.requests.terms import CancelTerms
from orbitq.services.scheduler import (
    Cost,
    DownlinkSegment,
    Placement,
    Request,
    Uplink,
    placement_cost,
)

T0 = 1_764_979_200


def request(output_mb: int, input_mb: int) -> Request:
    return Request(
        id="r",
        tenant="acme",
        cpu_millicores=1000,
        run_seconds=600,
        storage_mb=500,
        input_mb=input_mb,
        output_mb=output_mb,
        not_before=T0,
        deadline=T0 + 86_400,
    )


def placement(uplink_at: int, up: int, down: int) -> Placement:
    start = uplink_at + up
    segments = (DownlinkSegment("c2", "s", start + 700, start + 700 + down),) if down else ()
    return Placement("r", "n", start, start + 600, Uplink("c1", "s", uplink_at, start), segments)


@given(
    cutoff=st.integers(0, 7 * 86_400),
    percent=st.integers(0, 100),
    up=st.integers(1, 3_600),
    down=st.integers(0, 3_600),
    reserved=st.integers(0, 10_000),
    offset=st.integers(-10 * 86_400, 86_400),
)
def test_free_before_the_cut_off_and_the_capped_fee_after(
    cutoff: int, percent: int, up: int, down: int, reserved: int, offset: int
) -> None:
    terms = CancelTerms(cutoff, percent)
    uplink_at = T0 + 86_400
    wanted = request(output_mb=1, input_mb=1)
    planned = placement(uplink_at, up, down)
    mine = terms.of(wanted, planned, reserved)
    assert mine.cutoff == uplink_at - cutoff
    link = placement_cost(wanted, planned).link
    assert mine.fee.cpu == mine.fee.storage == 0
    assert mine.fee.link <= reserved
    assert mine.fee.link == min(-(-link * percent // 100), reserved)
    now = mine.cutoff + offset
    assert mine.due(now) == (mine.fee if offset >= 0 else Cost(0, 0, 0))
    if percent < 100:
        assert CancelTerms(cutoff, percent + 1).of(wanted, planned, reserved).fee.link >= (
            mine.fee.link
        )


def test_an_unplaced_request_is_free_to_cancel() -> None:
    terms = CancelTerms().of(request(200, 0), None, 16)
    assert terms.cutoff is None
    assert terms.due(T0 + 10**6).link == 0
    assert "free" in terms.summary(T0)


def test_the_terms_refuse_shares_and_cut_offs_out_of_range() -> None:
    with pytest.raises(ValueError, match="cancel_fee_percent"):
        CancelTerms(900, 101)
    with pytest.raises(ValueError, match="cancel_cutoff_seconds"):
        CancelTerms(8 * 86_400, 100)


def test_config_toml_sets_the_terms(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'origin = "orbitq.test/ledger"\ncancel_cutoff_seconds = 0\ncancel_fee_percent = 50\n'
    )
    config = load_config(tmp_path)
    assert (config.cancel_cutoff_seconds, config.cancel_fee_percent) == (0, 50)
    defaults = load_config(tmp_path / "elsewhere")
    assert (defaults.cancel_cutoff_seconds, defaults.cancel_fee_percent) == (900, 100)
    (tmp_path / "config.toml").write_text('origin = "o"\ncancel_fee_percent = 150\n')
    with pytest.raises(ValueError, match=r"cancel_fee_percent must be in 0\.\.100"):
        load_config(tmp_path)
