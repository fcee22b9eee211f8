"""Contact gating: a satellite's agent reaches the broker only inside its contact windows.

Owns: the rule every node call but EnrollNode passes first — the node's agent may call within
[aos - tolerance, los + tolerance] of one of the node's stored contacts (the tolerance covers
clock skew and the refinement of AOS/LOS to whole seconds), unless it was enrolled with the
ground link "always" (a ground stand-in); otherwise FAILED_PRECONDITION naming the next
contact ("node N is outside its contact windows; the next is with station S from T to T'"),
or saying the plan's horizon holds none — and the node's next contact windows, which
PullTickets and Heartbeat return so the agent knows when to call again.

Every node call asks this, so it answers from a per-node copy of the node's upcoming contacts
(`_Window`), read once and kept while the contact plan's version is unchanged and the copy
still covers `now`; a call then costs one small read (the version) instead of two range scans
of the contacts. The plan's version alone, not the whole WorldVersion: what the copy holds (the
stored contacts, the booked windows and the stations' booking modes, the plan's horizon) is
written only by a refresh of the plan or an import of a booked plan, and both move it; writes
of nodes and stations (the world revision: node states, enrolments) change none of it.

Does not own: the contact plan (orbitq.services.constellation) or what a call does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from orbitq.services.clock import NANOS_PER_SECOND, from_ns
from orbitq.services.constellation import (
    Constellation,
    NodeAgentInfo,
    StoredContact,
    WorldVersion,
)
from orbitq.services.errors import FailedPreconditionError
from orbitq.services.scheduler import rfc3339

# Contact windows returned to an agent (earliest first).
CONTACTS_RETURNED_MAX = 64
# A node's contacts kept in its copy; when fewer than CONTACTS_RETURNED_MAX of them are still
# to come and the copy stopped short of the horizon, it is read again.
CONTACTS_KEPT_MAX = 512
# Nodes whose copies are kept (a fleet larger than this drops them all and starts over).
NODES_KEPT_MAX = 100_000


def _when(ns: int) -> str:
    return rfc3339(ns // NANOS_PER_SECOND)


@dataclass(frozen=True, slots=True)
class _Window:
    """A node's contacts overlapping [from_ns, horizon_end_ns + margin), earliest first, as of
    `version`; `complete`: none was left out (else the copy stops at CONTACTS_KEPT_MAX)."""

    version: WorldVersion
    from_ns: int
    horizon_end_ns: int
    contacts: tuple[StoredContact, ...]
    complete: bool


class ContactGate:
    def __init__(self, constellation: Constellation, tolerance_seconds: int) -> None:
        self._constellation = constellation
        self._tolerance_ns = tolerance_seconds * NANOS_PER_SECOND
        # A second of margin each way: datetimes keep microseconds, the contacts nanoseconds.
        self._margin_ns = self._tolerance_ns + NANOS_PER_SECOND
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def check(
        self, node: str, agent: NodeAgentInfo, now_ns: int, version: WorldVersion | None = None
    ) -> None:
        """Pass, or FailedPreconditionError naming the node's next contact. `version`: the
        world version the caller read for this call (None: read it)."""
        if agent.ground_link == "always":
            return
        if self.in_contact(node, now_ns, version) is not None:
            return
        upcoming = [c for c in self.next_contacts(node, now_ns, 1, version) if c.aos_ns > now_ns]
        if not upcoming:
            raise FailedPreconditionError(
                f"node {node} is outside its contact windows, and the contact plan's horizon"
                " holds no further contact of it"
            )
        nxt = upcoming[0]
        raise FailedPreconditionError(
            f"node {node} is outside its contact windows; the next is with station"
            f" {nxt.station} from {_when(nxt.aos_ns)} to {_when(nxt.los_ns)}"
        )

    def in_contact(
        self, node: str, now_ns: int, version: WorldVersion | None = None
    ) -> StoredContact | None:
        """The node's contact `now_ns` is inside (with the tolerance), if any."""
        window = self._window(node, now_ns, version)
        for contact in window.contacts:
            if contact.aos_ns - self._tolerance_ns > now_ns:
                break  # earliest first: the rest begin later still
            if now_ns <= contact.los_ns + self._tolerance_ns:
                return contact
        return None

    def contact(
        self, node: str, contact_id: str, now_ns: int, version: WorldVersion | None = None
    ) -> StoredContact | None:
        """The node's contact of that id among those not over by `now_ns` (None: not found)."""
        for contact in self._window(node, now_ns, version).contacts:
            if contact.id == contact_id:
                return contact
        return None

    def next_contacts(
        self,
        node: str,
        now_ns: int,
        limit: int = CONTACTS_RETURNED_MAX,
        version: WorldVersion | None = None,
    ) -> list[StoredContact]:
        """The node's contacts that have not ended by `now_ns`, earliest first."""
        window = self._window(node, now_ns, version)
        if window.horizon_end_ns <= now_ns:
            return []
        found: list[StoredContact] = []
        for contact in window.contacts:
            if contact.aos_ns >= window.horizon_end_ns or len(found) >= limit:
                break
            if contact.los_ns > now_ns:
                found.append(contact)
        return found

    def _window(self, node: str, now_ns: int, version: WorldVersion | None) -> _Window:
        if version is None:
            version = self._constellation.world_version()
        with self._lock:
            window = self._windows.get(node)
        if window is not None and self._covers(window, version, now_ns):
            return window
        window = self._read(node, version, now_ns)
        with self._lock:
            if len(self._windows) >= NODES_KEPT_MAX:
                self._windows.clear()
            self._windows[node] = window
        return window

    def _covers(self, window: _Window, version: WorldVersion, now_ns: int) -> bool:
        # The plan's version only (module docstring): a node's state written elsewhere in the
        # fleet (the world revision) kept every node's copy from being used again.
        stale = window.version.plan_version != version.plan_version
        if stale or now_ns - self._margin_ns < window.from_ns:
            return False
        if window.complete:
            return True
        ahead = sum(1 for c in window.contacts if c.los_ns > now_ns)
        return ahead > CONTACTS_RETURNED_MAX

    def _read(self, node: str, version: WorldVersion, now_ns: int) -> _Window:
        horizon_end_ns = self._constellation.plan().horizon_end_ns
        from_ns_ = now_ns - self._margin_ns
        until_ns = max(horizon_end_ns, now_ns) + self._margin_ns
        contacts: list[StoredContact] = []
        complete = True
        for batch in self._constellation.iter_contacts_between(
            from_ns(from_ns_), from_ns(until_ns), node=node
        ):
            contacts.extend(batch)
            if len(contacts) >= CONTACTS_KEPT_MAX:
                complete = False  # maybe more: read again when the copy runs short
                break
        # Batches come by (aos, id): the kept ones are the earliest.
        kept = tuple(contacts[:CONTACTS_KEPT_MAX])
        return _Window(version, from_ns_, horizon_end_ns, kept, complete)
