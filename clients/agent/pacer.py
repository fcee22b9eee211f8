"""Pacing the downlink at the node's rate: a token bucket in bytes on the agent's clock.

Owns: how many bytes the agent may send now. Tokens accrue at `downlink_mbps` only while the
agent is sending (a window of the ticket's downlink plan is open and a result waits), up to a
burst of `burst_seconds` of the rate (at least one chunk); an idle gap gives nothing, so a
pass starts at the rate, not with a burst saved up from the last one. Time comes from the
caller (the loop's `now`), never from a clock read here: the simulator steps it.

Does not own: windows or chunks (orbitq.clients.agent.agent).
"""

from __future__ import annotations

BITS_PER_BYTE = 8
BITS_PER_MEGABIT = 1_000_000
BURST_SECONDS_DEFAULT = 1.0
# A wait shorter than this is not worth a step (and float time cannot tell it from now).
READY_SECONDS_MIN = 0.001


class Pacer:
    def __init__(
        self,
        downlink_mbps: float,
        *,
        chunk_bytes: int,
        burst_seconds: float = BURST_SECONDS_DEFAULT,
    ) -> None:
        assert downlink_mbps > 0
        assert chunk_bytes > 0
        assert burst_seconds > 0
        self.downlink_mbps = downlink_mbps
        self.bytes_per_second = downlink_mbps * BITS_PER_MEGABIT / BITS_PER_BYTE
        self.capacity = max(float(chunk_bytes), self.bytes_per_second * burst_seconds)
        self._tokens = 0.0
        self._last: float | None = None

    def grant(self, now: float, wanted: int) -> int:
        """Bytes that may be sent now, at most `wanted` (they are spent)."""
        self._refill(now)
        # Rounded, not floored: float time must not leave a last byte for the next step.
        granted = min(round(self._tokens), wanted)
        self._tokens -= granted
        return max(granted, 0)

    def ready_at(self, now: float, wanted: int) -> float:
        """When `wanted` bytes (capped at the capacity) will have accrued, sending from now."""
        self._refill(now)
        missing = min(float(wanted), self.capacity) - self._tokens
        if missing <= 0.5:
            return now
        return now + max(missing / self.bytes_per_second, READY_SECONDS_MIN)

    def idle(self) -> None:
        """Nothing to send (or the window closed): the next grant starts from empty."""
        self._tokens = 0.0
        self._last = None

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(
                self.capacity, self._tokens + (now - self._last) * self.bytes_per_second
            )
        if self._last is None or now > self._last:
            self._last = now
