"""The agent's loop on a simulated clock against an in-memory ground segment with real keys:
onboard ticket checks, runs, pacing inside the downlink windows, receipts kept until
acknowledged, refusals until a heartbeat, crash recovery, contact gating."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orbitq.clients.agent.agent import NEXT_PULL_AHEAD_MAX, Agent, AgentSettings
from orbitq.clients.agent.sandbox import Sandbox
from orbitq.clients.agent.store import AgentStore
from orbitq.ledger.receipts import RunOutcome, cpu_core_seconds
from orbitq.ledger.tickets import RefusalReason
from orbitq.services.clock import SimulatedClock
from tests.agent import wat
from tests.agent.ground import NODE, T0, Ground, at, tampered

RATE = 16 * 10**9
RID = "0123456789abcdef0123456789abcdef"
RID2 = "fedcba9876543210fedcba9876543210"


@dataclass
class Rig:
    ground: Ground
    clock: SimulatedClock
    store: AgentStore
    agent: Agent
    data_dir: Path
    log: list[str]

    def step_at(self, seconds: float) -> float:
        self.clock.set(at(seconds))
        return self.agent.step().timestamp()

    def restart(self) -> None:
        """A new agent process on the same data directory (the store reopened)."""
        self.store.close()
        self.store = AgentStore(self.data_dir / "agent.db")
        self.agent = _agent(self.ground, self.store, self.data_dir, self.clock, self.log)


def _agent(
    ground: Ground,
    store: AgentStore,
    data_dir: Path,
    clock: SimulatedClock,
    log: list[str],
    *,
    always: bool = True,
) -> Agent:
    settings = AgentSettings(
        node=NODE,
        key=ground.node_key,
        verifier=ground.verifier(),
        fuel_per_core_second=RATE,
        runtime="wasmtime 51.0.0",
        ground_link_always=always,
        probe_interval_seconds=30,
    )
    sandbox = Sandbox(data_dir / "modules")
    return Agent(settings, store, ground, data_dir, sandbox.run, clock=clock, log=log.append)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    ground = Ground()
    clock = SimulatedClock(at(T0))
    for sub in ("runs", "blobs", "modules"):
        (tmp_path / sub).mkdir()
    store = AgentStore(tmp_path / "agent.db")
    log: list[str] = []
    rig = Rig(ground, clock, store, _agent(ground, store, tmp_path, clock, log), tmp_path, log)
    yield rig
    rig.store.close()


def test_a_ticket_runs_downlinks_in_its_window_and_its_receipt_is_acknowledged(rig: Rig) -> None:
    rig.ground.ticket(RID, wat.wasm(wat.readsum()), b"abc")
    assert rig.step_at(T0) == T0 + 10  # pulled, verified, blobs fetched; next: the next pull
    assert rig.store.ticket(RID).state == "accepted"  # type: ignore[union-attr]
    assert rig.step_at(T0 + 55) == T0 + 60  # next: the start
    rig.step_at(T0 + 60)
    assert rig.store.ticket(RID).state == "ran"  # type: ignore[union-attr]
    assert rig.step_at(T0 + 395) == T0 + 400  # next: the downlink window
    assert not rig.ground.results  # nothing goes down outside the window
    due = rig.step_at(T0 + 400)  # the window opens: the pacer starts empty
    assert T0 + 400 < due < T0 + 401
    rig.step_at(due)
    receipt = rig.ground.receipts[RID]
    result = bytes(rig.ground.results[RID])
    assert result == b"1a47e90b\n"  # FNV-1a of "abc"
    assert receipt.outcome == RunOutcome.OK
    assert receipt.result_sha256 == hashlib.sha256(result).digest()
    assert receipt.bytes_downlinked == receipt.result_bytes == len(result)
    assert receipt.cpu_core_seconds == cpu_core_seconds(receipt.fuel, RATE) == 1
    assert receipt.start == T0 + 60
    assert receipt.storage_mb_seconds == 10 * (int(due) - receipt.start)
    assert receipt.link_seconds == 1
    assert receipt.uplink_seconds == 1
    assert receipt.runtime == "wasmtime 51.0.0"
    assert rig.store.outbox() == []  # acknowledged
    assert rig.store.ticket(RID).state == "done"  # type: ignore[union-attr]


def test_a_failed_run_is_receipted_at_once_with_its_outcome(rig: Rig) -> None:
    rig.ground.ticket(RID, wat.wasm(wat.exit_with(7)), None)
    rig.step_at(T0)
    rig.step_at(T0 + 60)
    receipt = rig.ground.receipts[RID]
    assert (receipt.outcome, receipt.exit_code) == (RunOutcome.EXIT, 7)
    assert receipt.bytes_downlinked == 0
    assert receipt.result_sha256 is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"node": "sat-2"}, RefusalReason.WRONG_NODE),
        ({"issuer": "someone-else"}, RefusalReason.WRONG_ISSUER),
        (
            {"expires": T0 - 120, "not_before": T0 - 300, "start": T0 - 200, "end": T0 - 150},
            RefusalReason.EXPIRED,
        ),
        ({"not_before": T0 + 3_600, "expires": T0 + 7_200}, RefusalReason.NOT_YET_VALID),
    ],
)
def test_bad_tickets_are_refused_onboard_and_reported_at_the_heartbeat(
    rig: Rig, change: dict[str, object], reason: RefusalReason
) -> None:
    rig.ground.ticket(RID, wat.wasm(wat.hello()), None, **change)
    rig.step_at(T0)
    assert rig.store.ticket(RID) is None  # nothing accepted
    assert [r.reason for r in rig.store.refusals(limit=10)] == [reason]
    rig.step_at(T0 + 30)  # the next step's heartbeat carries it
    assert [RefusalReason(r.reason) for r in rig.ground.refusals] == [reason]
    assert rig.ground.refusals[0].request_id == RID
    assert rig.store.refusals(limit=10) == []  # acknowledged


def test_a_tampered_ticket_is_refused_as_badly_signed(rig: Rig) -> None:
    envelope = rig.ground.ticket(RID, wat.wasm(wat.hello()), None)
    rig.ground.pending = [tampered(envelope)]
    rig.step_at(T0)
    (refusal,) = rig.store.refusals(limit=10)
    assert refusal.reason == RefusalReason.BAD_SIGNATURE
    assert refusal.ticket_digest == hashlib.sha256(tampered(envelope)).digest()


def test_a_replay_of_a_request_already_run_is_refused_and_a_re_pull_is_not(rig: Rig) -> None:
    module = wat.wasm(wat.exit_with(0))
    rig.ground.ticket(RID, module, None)
    rig.step_at(T0)
    rig.step_at(T0 + 30)  # the same envelope pulled again: nothing new
    assert rig.store.refusals(limit=10) == []
    rig.step_at(T0 + 60)  # ran
    # another ticket for the same request (issued later): a replay once it ran
    rig.ground.pending = []
    rig.ground.ticket(RID, module, None, issued_at=T0 + 61)
    rig.step_at(T0 + 70)
    reasons = [r.reason for r in rig.store.refusals(limit=10)]
    reasons += [r.reason for r in rig.ground.refusals]
    assert RefusalReason.REPLAY in reasons
    assert len(rig.ground.receipt_envelopes) == 1  # ran once


def test_a_newer_ticket_replaces_one_not_yet_run(rig: Rig) -> None:
    module = wat.wasm(wat.exit_with(0))
    rig.ground.ticket(RID, module, None)
    rig.step_at(T0)
    rig.ground.pending = []
    newer = rig.ground.ticket(RID, module, None, issued_at=T0 + 5, start=T0 + 90)
    rig.step_at(T0 + 10)
    row = rig.store.ticket(RID)
    assert row is not None
    assert (row.envelope, row.start) == (newer, T0 + 90)


def test_a_blob_that_does_not_match_its_digest_refuses_the_ticket(rig: Rig) -> None:
    module = wat.wasm(wat.hello())
    rig.ground.ticket(RID, module, None)
    rig.ground.blobs[f"sha256:{hashlib.sha256(module).hexdigest()}"] = module + b"\0"
    rig.step_at(T0)
    (refusal,) = rig.store.refusals(limit=10)
    assert refusal.reason == RefusalReason.BLOB_UNAVAILABLE
    assert rig.store.ticket(RID).state == "refused"  # type: ignore[union-attr]
    rig.step_at(T0 + 60)
    assert RID not in rig.ground.receipts  # never run


def test_a_receipt_waits_in_the_outbox_while_the_link_is_down(rig: Rig) -> None:
    rig.ground.ticket(RID, wat.wasm(wat.exit_with(0)), None)
    rig.step_at(T0)
    rig.ground.up = False
    rig.step_at(T0 + 60)
    assert [rid for rid, _ in rig.store.outbox()] == [RID]
    rig.restart()  # the outbox is durable
    rig.ground.up = True
    rig.step_at(T0 + 200)
    assert rig.store.outbox() == []
    assert len(rig.ground.receipt_envelopes) == 1


def test_a_run_cut_short_is_run_again_before_its_ticket_expires(rig: Rig) -> None:
    rig.ground.ticket(RID, wat.wasm(wat.exit_with(0)), None)
    rig.step_at(T0)
    rig.clock.set(at(T0 + 60))
    rig.store.start_run(RID, T0 + 60)  # the agent died right after marking the run started
    rig.restart()
    rig.step_at(T0 + 61)
    receipt = rig.ground.receipts[RID]
    assert receipt.outcome == RunOutcome.OK
    run = rig.store.run(RID)
    assert run is not None
    assert run.attempt == 2
    assert any("running it again" in line for line in rig.log)


def test_a_run_cut_short_after_its_ticket_expired_is_aborted(rig: Rig) -> None:
    rig.ground.ticket(RID, wat.wasm(wat.exit_with(0)), None)
    rig.step_at(T0)
    rig.clock.set(at(T0 + 60))
    rig.store.start_run(RID, T0 + 60)
    rig.restart()
    rig.step_at(T0 + 700)  # after the expiry
    receipt = rig.ground.receipts[RID]
    assert receipt.outcome == RunOutcome.ABORTED
    assert (receipt.fuel, receipt.cpu_core_seconds, receipt.storage_mb_seconds) == (0, 0, 0)


def test_the_downlink_is_paced_at_the_node_rate(rig: Rig) -> None:
    size = 3_000_000  # 3 s at 8 Mbit/s (1 MB/s)
    rig.ground.ticket(RID, wat.wasm(_writer(size)), None, output_bytes_max=4 << 20)
    rig.step_at(T0)
    rig.step_at(T0 + 60)
    now = float(T0 + 400)
    for _ in range(20):
        due = rig.step_at(now)
        if RID in rig.ground.receipts:
            break
        assert due > now, (rig.log, rig.ground.chunks, due)
        now = due
    sent = 0
    for _request, offset, length in rig.ground.chunks:
        assert offset == sent
        sent += length
    assert sent == size
    # 1 MB/s from the window's start, with a burst of one second at most
    assert now - (T0 + 400) >= 3


def test_the_agent_talks_only_inside_its_contact_windows(tmp_path: Path) -> None:
    ground = Ground()
    ground.contact(T0 + 100, T0 + 200, "pass-1")
    clock = SimulatedClock(at(T0))
    for sub in ("runs", "blobs", "modules"):
        (tmp_path / sub).mkdir()
    store = AgentStore(tmp_path / "agent.db")
    log: list[str] = []
    agent = _agent(ground, store, tmp_path, clock, log, always=False)
    assert agent.step().timestamp() == T0 + 100  # a probe learned the plan: next, the pass
    calls = ground.heartbeats
    clock.set(at(T0 + 50))
    agent.step()
    assert ground.heartbeats == calls  # outside the window: silent
    ground.ticket(RID, wat.wasm(wat.exit_with(0)), None, start=T0 + 150)
    clock.set(at(T0 + 100))
    agent.step()
    assert ground.heartbeats == calls + 1
    assert store.ticket(RID) is not None
    store.close()


def _writer(size: int) -> str:
    """Writes `size` bytes (zeros) to /out/big.bin."""
    return f"""(module {wat.IMPORTS}
  (memory (export "memory") 64)
  (data (i32.const 16) "big.bin")
  {wat.HELPERS}
  (func (export "_start")
    (if (call $path_open (i32.const 4) (i32.const 0) (i32.const 16) (i32.const 7)
          (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 12))
      (then (call $proc_exit (i32.const 2))))
    (if (call $write (i32.load (i32.const 12)) (i32.const 65536) (i32.const {size}))
      (then (call $proc_exit (i32.const 3))))))
"""


def _contacts_rig(tmp_path: Path, ground: Ground) -> tuple[SimulatedClock, AgentStore, Agent]:
    clock = SimulatedClock(at(T0))
    for sub in ("runs", "blobs", "modules"):
        (tmp_path / sub).mkdir()
    store = AgentStore(tmp_path / "agent.db")
    return clock, store, _agent(ground, store, tmp_path, clock, [], always=False)


def test_an_agent_told_when_next_to_pull_waits_until_then_and_gets_work_placed_meanwhile(
    tmp_path: Path,
) -> None:
    """The broker's next_pull_at: no pull before it inside the contact, a pull at it that
    brings a ticket placed after the promise was given (the broker's notice makes its
    window open no earlier)."""
    ground = Ground()
    ground.contact(T0, T0 + 600, "pass-1")
    ground.next_pull_at = T0 + 200
    clock, store, agent = _contacts_rig(tmp_path, ground)
    assert agent.step().timestamp() == T0  # a probe pulled and learned the plan: the pass
    assert agent.step().timestamp() == T0 + 200  # its heartbeat; next: the promised pull
    assert (ground.pulls, ground.heartbeats) == (1, 2)
    clock.set(at(T0 + 100))
    agent.step()
    assert ground.pulls == 1  # nothing can be due yet: no pull
    ground.ticket(RID, wat.wasm(wat.exit_with(0)), None, start=T0 + 250)  # placed after
    ground.next_pull_at = None
    clock.set(at(T0 + 200))
    assert agent.step().timestamp() == T0 + 210  # no promise now: the agent's own cadence
    assert ground.pulls == 2
    assert store.ticket(RID) is not None
    assert store.ticket(RID).state == "accepted"  # type: ignore[union-attr]
    store.close()


def test_a_promise_beyond_the_contact_still_steps_at_each_contact_for_its_heartbeat(
    tmp_path: Path,
) -> None:
    ground = Ground()
    ground.contact(T0, T0 + 100, "pass-1")
    ground.contact(T0 + 300, T0 + 400, "pass-2")
    ground.next_pull_at = T0 + 350
    clock, store, agent = _contacts_rig(tmp_path, ground)
    assert agent.step().timestamp() == T0  # a probe pulled and learned the plan: the pass
    assert agent.step().timestamp() == T0 + 100  # the contact's end comes first
    assert (ground.pulls, ground.heartbeats) == (1, 2)  # the probe's and pass-1's
    clock.set(at(T0 + 100))
    assert agent.step().timestamp() == T0 + 300  # out of contact: the next one
    clock.set(at(T0 + 300))
    assert agent.step().timestamp() == T0 + 350  # heartbeat at pass-2; the pull as promised
    assert (ground.pulls, ground.heartbeats) == (1, 3)
    clock.set(at(T0 + 350))
    agent.step()
    assert ground.pulls == 2
    store.close()


def test_a_promise_too_far_ahead_is_bounded(tmp_path: Path) -> None:
    ground = Ground()
    ground.contact(T0, T0 + 86_400, "long-pass")
    ground.next_pull_at = T0 + 10 * NEXT_PULL_AHEAD_MAX
    clock, store, agent = _contacts_rig(tmp_path, ground)
    agent.step()
    clock.set(at(T0 + NEXT_PULL_AHEAD_MAX))
    agent.step()
    assert ground.pulls == 2
    store.close()
