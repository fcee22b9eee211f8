"""The admission gate of long-lived streams: counts in total and per peer, and a lifetime.

Each open stream (health Watch, server reflection, WatchRequest, any streaming RPC) holds one
of the gRPC server's worker threads for as long as it is open, whoever opened it: the health
and reflection services need no key. Unbounded, about 70 idle streams without any key held
every worker and an operator's unary call waited past its deadline (issue 16). So:

- at most `StreamLimits.total_max` streams are open at once, at most half the workers
  (orbitq.services.server checks it), which keeps the other half for unary calls;
- at most `StreamLimits.per_peer_max` from one peer address (IP, port ignored);
- beyond either, a new stream is refused at once with RESOURCE_EXHAUSTED (it never waits for
  a worker to free up), and a slot is given back the moment its stream ends however it ends
  (the generator's exit, or the RPC's termination callback, whichever comes first);
- a stream lives at most `lifetime_seconds` (+ `close_grace_seconds`): the server closes a
  connection at that age (gRPC's max_connection_age, so clients reconnect transparently), and
  keepalive pings find peers that vanished, so an idle or abandoned stream cannot hold a slot
  for ever.

Does not own: which streams a method allows (WatchRequest has its own per-tenant caps) or the
status code (STATUS_OF maps ResourceExhaustedError).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from orbitq.services.errors import ResourceExhaustedError

STREAMS_MAX = 32
STREAMS_PER_PEER_MAX = 16
STREAM_SECONDS_MAX = 1800.0
STREAM_CLOSE_GRACE_SECONDS = 30.0
# Server pings an idle connection this often and drops it when the ping is not answered.
KEEPALIVE_SECONDS = 60.0
KEEPALIVE_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class StreamLimits:
    total_max: int = STREAMS_MAX
    per_peer_max: int = STREAMS_PER_PEER_MAX
    lifetime_seconds: float = STREAM_SECONDS_MAX
    close_grace_seconds: float = STREAM_CLOSE_GRACE_SECONDS

    def __post_init__(self) -> None:
        if not self.per_peer_max >= 1:
            raise ValueError(f"streams per peer must be at least 1, got {self.per_peer_max}")
        if not self.total_max >= 1:
            raise ValueError(f"streams in total must be at least 1, got {self.total_max}")
        if not (self.lifetime_seconds > 0 and self.close_grace_seconds > 0):
            raise ValueError("a stream's lifetime and close grace must be positive")

    def server_options(self) -> list[tuple[str, int]]:
        """The gRPC server options that give every connection, so every stream, a lifetime."""
        return [
            ("grpc.max_connection_age_ms", int(self.lifetime_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", int(self.close_grace_seconds * 1000)),
            ("grpc.keepalive_time_ms", int(KEEPALIVE_SECONDS * 1000)),
            ("grpc.keepalive_timeout_ms", int(KEEPALIVE_TIMEOUT_SECONDS * 1000)),
        ]


def peer_address(peer: str) -> str:
    """The address of a gRPC peer string without its port: "ipv4:10.0.0.7:5301" -> "10.0.0.7",
    "ipv6:[::1]:5301" -> "::1"; anything else (unix sockets) as it is."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = rest.rpartition(":")[0] or rest
        return host.strip("[]")
    return peer


class StreamGate:
    """Counts open streams in total and per peer; thread-safe. Its table holds only peers with
    a stream open, so it is bounded by `total_max`."""

    def __init__(self, limits: StreamLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._open = 0
        self._by_peer: dict[str, int] = {}

    @property
    def open(self) -> int:
        with self._lock:
            return self._open

    def admit(self, peer: str) -> Callable[[], None]:
        """Take a slot for a stream from `peer`, or ResourceExhaustedError. Returns the release
        (idempotent: call it from every place the stream may end)."""
        address = peer_address(peer)
        limits = self.limits
        with self._lock:
            if self._open >= limits.total_max:
                raise ResourceExhaustedError(
                    f"the broker has its maximum of {limits.total_max} long-lived streams open;"
                    " retry later (unary calls are not affected)"
                )
            if self._by_peer.get(address, 0) >= limits.per_peer_max:
                raise ResourceExhaustedError(
                    f"{address} has its maximum of {limits.per_peer_max} long-lived streams"
                    " open; close one or retry later"
                )
            self._open += 1
            self._by_peer[address] = self._by_peer.get(address, 0) + 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return
                released.set()
                self._open -= 1
                left = self._by_peer[address] - 1
                if left:
                    self._by_peer[address] = left
                else:
                    del self._by_peer[address]

        return release
