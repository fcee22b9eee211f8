"""The simulator's node agents: one real `Agent` (orbitq.clients.agent) per node, in-process,
on the simulated clock.

Owns: enrolling every node (an enrollment token, then EnrollNode with a node key derived from
the seed, so a seed repeats itself), the simulated nodes' fuel rate, the cheap module the
tenants run (WAT of our own, compiled by wasmtime), the in-process link, and when each agent
steps. Everything else is the agent's and the broker's own code: tickets signed and verified
with Ed25519 (COSE_Sign1), contact gating (each agent talks only inside its node's contact
windows, ground link "contacts"), real wasm runs in the sandbox with fuel metering, results
downlinked paced at the node's rate, receipts signed, reported and settled.

`SimLink` is the BrokerLink the agent loop already names for the simulator: each call goes to
the same NodeAgentServicer method `orbitq serve` answers, as the node's principal, without the
network; a broker refusal becomes the SDK exception its status code maps to, and "outside a
contact" becomes LinkDownError, exactly as GrpcLink turns them.

Each agent steps at the instants it asks for (its `step` returns when next), in time order
(node id breaking ties), so a contact shorter than the driver's step is not missed; the driver
keeps the clock monotonic by stepping the agents due before each broker pass.

Does not own: the loop (orbitq.clients.agent.agent), the broker's rules, the driver.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import wasmtime
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orbitq.clients.agent.agent import Agent, AgentSettings
from orbitq.clients.agent.link import LinkDownError, TypedLink, is_link_down
from orbitq.clients.agent.sandbox import Sandbox, runtime
from orbitq.clients.agent.store import AgentStore
from orbitq.clients.errors import ERROR_OF_STATUS, InternalError
from orbitq.ledger.note import parse_verifier_key
from orbitq.ledger.tickets import TicketVerifier
from orbitq.services.agents.enrollment import EnrollRequest
from orbitq.services.auth import (
    SYSTEM,
    Principal,
    reset_current_principal,
    set_current_principal,
)
from orbitq.services.clock import SimulatedClock
from orbitq.services.errors import BrokerError
from orbitq.services.identity.api_keys import Role
from orbitq.services.interceptors import STATUS_OF
from orbitq.services.servicers.agent import NodeAgentServicer

if TYPE_CHECKING:
    from orbitq.services.broker import Broker

log = logging.getLogger(__name__)

# The simulated nodes' calibrated rate: fixed (not measured, the lowest EnrollNode takes), so
# a seed repeats its charges.
FUEL_PER_CORE_SECOND = 100_000_000
# The cheap module spins this many loop rounds (a few hundred thousand fuel), then writes
# a 3-byte result: every run really executes, is metered, and has something to downlink.
SPIN_ROUNDS = 50_000
ENROLLMENT_TTL_SECONDS = 600
PULL_SECONDS = 10
# Stepping bounds: an agent's step is work; in a contact, pull at the driver's cadence.
AGENT_STEPS_MAX = 50_000_000

SIM_MODULE_WAT = f"""(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 32) "result.txt")
  (data (i32.const 48) "ok\\n")
  (func (export "_start")
    (local $i i32)
    (loop $spin
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $spin (i32.lt_u (local.get $i) (i32.const {SPIN_ROUNDS}))))
    ;; /out/result.txt: path_open(fd 4, lookup 0, path, len, CREAT|TRUNC, FD_WRITE, 0, 0, &fd)
    (if (call $path_open (i32.const 4) (i32.const 0) (i32.const 32) (i32.const 10)
          (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 12))
      (then (call $proc_exit (i32.const 2))))
    (i32.store (i32.const 0) (i32.const 48))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.load (i32.const 12)) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def sim_module() -> bytes:
    """The cheap module every simulated request runs (WebAssembly binary)."""
    return bytes(wasmtime.wat2wasm(SIM_MODULE_WAT))


class SimLink(TypedLink):
    """BrokerLink in-process: the NodeAgentServicer's methods, as the node's principal."""

    def __init__(self, servicer: NodeAgentServicer, principal: Principal) -> None:
        self._servicer = servicer
        self._principal = principal
        self.calls: Counter[str] = Counter()

    def _call(self, method: str, request: object) -> object:
        self.calls[method] += 1
        token = set_current_principal(self._principal)
        try:
            return getattr(self._servicer, method)(request, None)
        except BrokerError as error:
            code = next(STATUS_OF[kind] for kind in type(error).__mro__ if kind in STATUS_OF)
            refused = ERROR_OF_STATUS.get(code, InternalError)(code, str(error))
            if is_link_down(refused):
                raise LinkDownError(f"{method}: {error}") from None
            raise refused from None
        finally:
            reset_current_principal(token)


@dataclass
class AgentTally:
    """What the agents said they did (their log lines, counted by what they begin with)."""

    events: Counter[str] = field(default_factory=Counter)
    steps: int = 0

    def hear(self, line: str) -> None:
        """Count a log line by what it says, without its figures: "run ID ended: ok, fuel
        …" counts as "run ended: ok", "receipt ID acknowledged: entry …" as "receipt
        acknowledged"."""
        words = line.split(" ", 2)
        if words[0] in ("ticket", "run", "receipt", "result") and len(words) == 3:
            what = words[2]
            if what.startswith("ended: "):
                what = "ended: " + what.removeprefix("ended: ").split(",", 1)[0]
            else:
                what = what.split(":", 1)[0].split(" (", 1)[0]
            self.events[f"{words[0]} {what}"] += 1
        elif line.startswith("broker refused"):
            self.events[line.split(":", 1)[0]] += 1


class SimAgents:
    """One enrolled agent per node, stepped in time order on the simulated clock."""

    def __init__(
        self,
        broker: Broker,
        nodes: Sequence[str],
        scratch: Path,
        seed: int,
        clock: SimulatedClock,
        step_seconds: int,
    ) -> None:
        self.tally = AgentTally()
        self._clock = clock
        self._sandbox = Sandbox(scratch / "modules")
        servicer = NodeAgentServicer(broker.agents)
        signer = broker.agents.signer
        parsed = parse_verifier_key(signer.verifier_key())
        verifier = TicketVerifier(parsed.public_key_raw, parsed.key_id, signer.issuer)
        self.agents: dict[str, Agent] = {}
        self.links: dict[str, SimLink] = {}
        self._stores: list[AgentStore] = []
        self._due: list[tuple[float, str]] = []
        start = clock.now().timestamp()
        for node in nodes:
            key = Ed25519PrivateKey.from_private_bytes(
                hashlib.sha256(f"orbitq-sim-node-key/{seed}/{node}".encode()).digest()
            )
            made = broker.agents.create_enrollment_token(
                SYSTEM, node, "contacts", ENROLLMENT_TTL_SECONDS
            )
            enrolled = broker.agents.enroll(
                EnrollRequest(
                    node=node,
                    public_key=key.public_key().public_bytes_raw(),
                    token=made.token,
                    fuel_per_core_second=FUEL_PER_CORE_SECOND,
                    runtime=runtime(),
                )
            )
            principal = Principal(key_id=enrolled.api_key_id, role=Role.NODE, node=node)
            directory = scratch / "agents" / node
            for sub in ("runs", "blobs"):  # the layout orbitq.clients.agent.datadir makes
                (directory / sub).mkdir(parents=True, mode=0o700)
            store = AgentStore(directory / "agent.db", durable=False)
            self._stores.append(store)
            link = SimLink(servicer, principal)
            settings = AgentSettings(
                node=node,
                key=key,
                verifier=verifier,
                fuel_per_core_second=FUEL_PER_CORE_SECOND,
                runtime=runtime(),
                # Pull as often as an agent on a node does: a ticket is due from its uplink to
                # its start, which can be shorter than the driver's step.
                pull_interval_seconds=PULL_SECONDS,
                probe_interval_seconds=step_seconds,
                downlink_burst_seconds=float(step_seconds),
            )
            self.agents[node] = Agent(
                settings,
                store,
                link,
                directory,
                self._sandbox.run,
                clock=clock,
                log=self.tally.hear,
            )
            self.links[node] = link
            heapq.heappush(self._due, (start, node))

    def step_until(self, until: datetime) -> None:
        """Step every agent due at or before `until`, in time order; the clock follows."""
        limit = until.timestamp()
        while self._due and self._due[0][0] <= limit:
            moment, node = heapq.heappop(self._due)
            instant = datetime.fromtimestamp(moment, tz=until.tzinfo)
            if instant > self._clock.now():
                self._clock.set(instant)
            due = self.agents[node].step(self._clock.now())
            self.tally.steps += 1
            assert self.tally.steps <= AGENT_STEPS_MAX, "agents stepping without end"
            # Never the same instant again: a step that asks for now has done what was due.
            heapq.heappush(self._due, (max(due.timestamp(), moment + 1.0), node))

    def calls(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for link in self.links.values():
            total.update(link.calls)
        return dict(sorted(total.items()))

    def close(self) -> None:
        for store in self._stores:
            store.close()
