"""Named crash points: a test makes a broker die (SIGKILL, as `kill -9`) at an exact step.

Owns: `reached(point)`, called at the steps whose interruption matters for durability
(`submit.committed`: a request and its reservation are durable but the caller has no answer;
`recovery.found`: a starting broker found an orphan and has not released it yet;
`receipt.settled`: a usage receipt is stored and settled but its agent has no answer). It does
nothing unless the environment variable `ORBITQ_CRASH_AT` names the point when the process
starts:

    ORBITQ_CRASH_AT=submit.committed      die the first time the point is reached
    ORBITQ_CRASH_AT=submit.committed:3    die the third time

The variable is read once, at import: a broker in production (variable unset) pays one
comparison per point and can never be made to crash by anything it receives. The process
sends itself SIGKILL, so nothing is flushed, closed or rolled back by Python: exactly what a
power cut or an OOM kill leaves behind.

Does not own: what a crash must leave behind (the callers' docstrings, tests/crash).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

log = logging.getLogger(__name__)

ENV = "ORBITQ_CRASH_AT"


def _parse(text: str) -> tuple[str, int] | None:
    if not text:
        return None
    name, _, count = text.partition(":")
    try:
        times = int(count) if count else 1
    except ValueError:
        raise ValueError(f"{ENV}={text!r}: use a point name, optionally ':N' (N >= 1)") from None
    if not name or times < 1:
        raise ValueError(f"{ENV}={text!r}: use a point name, optionally ':N' (N >= 1)")
    return name, times


_TARGET = _parse(os.environ.get(ENV, ""))
_lock = threading.Lock()
_hits = [0]  # times the armed point was reached (a list: no global statement)


def armed() -> str | None:
    """The point this process will die at, if any (for a log line at start)."""
    return _TARGET[0] if _TARGET is not None else None


def reached(point: str) -> None:
    """Die here if `ORBITQ_CRASH_AT` names `point` and this is its N-th time."""
    if _TARGET is None or _TARGET[0] != point:
        return
    with _lock:
        _hits[0] += 1
        if _hits[0] < _TARGET[1]:
            return
    # stderr is unbuffered: the test can tell a planned death from an accident.
    sys.stderr.write(f"orbitq: crash point {point} reached ({ENV}); SIGKILL\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)  # pragma: no cover  (only where SIGKILL is not delivered at once)
