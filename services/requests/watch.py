"""Watching requests: in-process news of transitions, and the limits on watchers.

Owns: `TransitionHub`, a version number bumped after every committed batch of transitions that
watchers wait on, so a watch in this process wakes the moment its request moves (no polling);
and `WatchSlots`, the bound on concurrent watches. Each open WatchRequest holds one of the gRPC
server's worker threads (64, orbitq.services.server) for as long as it runs, so at most
`WATCHES_MAX` (half of them) may be open per broker and `WATCHES_PER_TENANT_MAX` per tenant;
beyond that a watch is refused with RESOURCE_EXHAUSTED, and GetRequest still answers.

A watch also reads the database every `WATCH_WAIT_SECONDS` when nothing was announced (another
replica may have moved the request), and lives at most `WATCH_SECONDS_MAX`: then the stream
ends and the client resumes after the last sequence number it saw (the SDK does this itself).

Does not own: what a watch streams (service.py) or transport.
"""

from __future__ import annotations

import threading
import time

from orbitq.services.errors import ResourceExhaustedError

WATCHES_MAX = 32
WATCHES_PER_TENANT_MAX = 8
WATCH_WAIT_SECONDS = 2.0
WATCH_SECONDS_MAX = 900.0
# Transitions read per query of a watch.
WATCH_PAGE_MAX = 100


class TransitionHub:
    """Announces "some request moved" to waiting watchers. Thread-safe."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._version = 0
        self._closed = False

    @property
    def version(self) -> int:
        with self._condition:
            return self._version

    @property
    def closed(self) -> bool:
        with self._condition:
            return self._closed

    def publish(self) -> None:
        with self._condition:
            self._version += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Block until the version differs from `seen`, the hub closes, or `timeout` seconds
        pass; returns the version then."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._version == seen and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._condition.wait(left)
            return self._version

    def close(self) -> None:
        """Wake every watcher for good (the broker is stopping): their streams end."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()


class WatchSlots:
    """Counts open watches, per broker and per tenant. Thread-safe."""

    def __init__(
        self, total_max: int = WATCHES_MAX, per_tenant_max: int = WATCHES_PER_TENANT_MAX
    ) -> None:
        assert 0 < per_tenant_max <= total_max
        self._lock = threading.Lock()
        self._total_max = total_max
        self._per_tenant_max = per_tenant_max
        self._open: dict[str, int] = {}

    @property
    def open(self) -> int:
        with self._lock:
            return sum(self._open.values())

    def acquire(self, tenant: str) -> Slot:
        """A slot for one watch of a request of `tenant`, or ResourceExhaustedError."""
        with self._lock:
            if sum(self._open.values()) >= self._total_max:
                raise ResourceExhaustedError(
                    f"the broker already serves {self._total_max} watches (its limit); retry"
                    " later, or poll GetRequest"
                )
            if self._open.get(tenant, 0) >= self._per_tenant_max:
                raise ResourceExhaustedError(
                    f"tenant {tenant!r} already has {self._per_tenant_max} open watches (the"
                    " limit per tenant); close one, or poll GetRequest"
                )
            self._open[tenant] = self._open.get(tenant, 0) + 1
        return Slot(self, tenant)

    def _release(self, tenant: str) -> None:
        with self._lock:
            self._open[tenant] -= 1
            if not self._open[tenant]:
                del self._open[tenant]


class Slot:
    """One open watch; `release` is idempotent (a watch frees its slot as it sends its terminal
    transition, so a client that saw the end may watch again at once)."""

    def __init__(self, slots: WatchSlots, tenant: str) -> None:
        self._slots = slots
        self._tenant = tenant
        self._held = True
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        self._slots._release(self._tenant)
