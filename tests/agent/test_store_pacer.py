"""The agent's store (bounded, durable across reopening) and its downlink pacer."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from orbitq.clients.agent.pacer import Pacer
from orbitq.clients.agent.store import (
    REFUSALS_MAX,
    TICKET_RETENTION_SECONDS,
    AgentStore,
    DownlinkRow,
    RefusalRow,
    RunRow,
    TicketRow,
)

RID = "0123456789abcdef0123456789abcdef"


def test_refusals_are_bounded_oldest_first(tmp_path: Path) -> None:
    store = AgentStore(tmp_path / "agent.db")
    for n in range(REFUSALS_MAX + 5):
        store.refuse(RefusalRow(0, f"{n:032x}", b"d" * 32, 1, "x" * 600, n), accepted=False)
    kept = store.refusals(limit=REFUSALS_MAX + 10)
    assert len(kept) == REFUSALS_MAX
    assert kept[0].request_id == f"{5:032x}"  # the five oldest went
    assert all(len(r.detail) == 500 for r in kept)  # details are bounded too
    store.acknowledge_refusals(kept[9].id)
    assert len(store.refusals(limit=REFUSALS_MAX)) == REFUSALS_MAX - 10
    store.close()


def test_a_run_and_its_receipt_survive_reopening(tmp_path: Path) -> None:
    store = AgentStore(tmp_path / "agent.db")
    store.put_ticket(TicketRow(RID, b"envelope", b"d" * 32, "accepted", 100, 500), 50)
    assert store.start_run(RID, 100) == 1
    store.close()
    store = AgentStore(tmp_path / "agent.db")
    assert store.ticket(RID).state == "running"  # type: ignore[union-attr]
    assert store.start_run(RID, 101) == 2  # a second attempt after a crash
    store.end_run(
        RunRow(RID, 0, 101, 120, 1, 0, 42, b"r" * 32, 10, ""),
        DownlinkRow(RID, 10, b"r" * 32, 0, None),
    )
    assert store.ticket(RID).state == "ran"  # type: ignore[union-attr]
    store.put_receipt(RID, b"receipt", 130)
    store.close()
    store = AgentStore(tmp_path / "agent.db")
    assert store.outbox() == [(RID, b"receipt")]
    assert store.refuse_receipt(RID, "no") == 1
    store.acknowledge_receipt(RID)
    assert store.outbox() == []
    assert store.prune(500 + TICKET_RETENTION_SECONDS + 1) == [RID]
    assert store.ticket(RID) is None
    assert store.run(RID) is None
    store.close()


def test_a_receipt_not_acknowledged_keeps_its_ticket(tmp_path: Path) -> None:
    store = AgentStore(tmp_path / "agent.db")
    store.put_ticket(TicketRow(RID, b"envelope", b"d" * 32, "accepted", 100, 500), 50)
    store.put_receipt(RID, b"receipt", 130)
    assert store.prune(10**10) == []
    assert store.outbox() == [(RID, b"receipt")]
    store.close()


def test_the_pacer_starts_empty_and_accrues_at_its_rate() -> None:
    pacer = Pacer(8, chunk_bytes=1000)  # 1,000,000 bytes/s
    assert pacer.grant(100.0, 10**6) == 0
    assert pacer.ready_at(100.0, 500_000) == 100.5
    assert pacer.grant(100.5, 10**6) == 500_000
    pacer.idle()  # a gap: nothing saved up
    assert pacer.grant(200.0, 10**6) == 0


@settings(max_examples=200, deadline=None)
@given(
    mbps=st.integers(1, 1000),
    burst=st.floats(0.1, 5.0),
    steps=st.lists(st.tuples(st.floats(0.0, 3.0), st.integers(0, 10**8)), max_size=40),
)
def test_the_pacer_never_sends_faster_than_its_rate_plus_one_burst(
    mbps: int, burst: float, steps: list[tuple[float, int]]
) -> None:
    pacer = Pacer(mbps, chunk_bytes=1 << 20, burst_seconds=burst)
    now, sent = 1_000.0, 0
    pacer.grant(now, 0)
    for gap, wanted in steps:
        now += gap
        granted = pacer.grant(now, wanted)
        assert 0 <= granted <= wanted
        sent += granted
        assert sent <= pacer.bytes_per_second * (now - 1_000.0) + pacer.capacity + 1
