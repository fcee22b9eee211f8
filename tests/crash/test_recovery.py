"""What a crash at each step of Submit leaves, and what recovery at start makes of it, on SQLite
and PostgreSQL, in-process (the kill -9 suites in this package prove the same on real
processes at random points).

A crash is reproduced exactly by an exception that no code path catches (`Crash`, a
BaseException like the KeyboardInterrupt a dying thread sees), thrown by the real reservations
before or after their real ledger write: the database is left as a killed process leaves it.
Then `Broker.recover()` runs as a starting broker does, and the token books must balance with
no reservation that a live request does not own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from orbitq.ledger.model import Code, Kind, Result, SystemAccount
from orbitq.services.requests.model import Fault, RequestState, StoredRequest
from orbitq.services.requests.recovery import INTERRUPTED_REASON
from orbitq.services.requests.reservations import Reservations, Step, transfer_id
from orbitq.services.requests.store import new_request_id
from orbitq.services.scheduler import Cost
from tests.conftest import BrokerHandle
from tests.requests.books import check_books
from tests.requests.sky import MINTED, OPERATOR, add_tenant, build_world, spec

pytestmark = pytest.mark.settlement("plan")
S = RequestState


class Crash(BaseException):
    """The process dies here."""


def _wrap_reserve(
    broker: BrokerHandle, before: Callable[[], None], after: Callable[[], None]
) -> Reservations:
    reservations = broker.broker.requests.reservations
    real = reservations.reserve

    def reserve(request_id: str, tenant: str, cost: Cost, timeout_seconds: int) -> None:
        before()
        real(request_id, tenant, cost, timeout_seconds)
        after()

    reservations.reserve = reserve  # type: ignore[method-assign]
    return reservations


def _nothing() -> None:
    pass


def _crash() -> None:
    raise Crash


def _only(broker: BrokerHandle) -> StoredRequest:
    (request,) = broker.broker.requests.store.all()
    return request


def _ready(broker: BrokerHandle) -> None:
    build_world(broker.broker, satellites=6, hours=2)
    add_tenant(broker.broker, "acme")


@pytest.mark.parametrize("reserved", [False, True], ids=["before-reserve", "after-reserve"])
def test_a_submit_interrupted_around_its_reservation_fails_and_holds_nothing(
    broker: BrokerHandle, reserved: bool
) -> None:
    _ready(broker)
    if reserved:
        _wrap_reserve(broker, _nothing, _crash)
    else:
        _wrap_reserve(broker, _crash, _nothing)
    acme = add_tenant(broker.broker, "globex")
    with pytest.raises(Crash):
        broker.broker.requests.submit(acme, spec(), "k1")
    left = _only(broker)
    assert (left.state, left.reservation_open) == (S.SUBMITTED, False)
    escrow_before = _escrow_pending(broker)
    assert escrow_before == (600 if reserved else 0)

    report = broker.broker.recover()

    assert report.failed == (left.id,)
    assert report.released == ((left.id,) if reserved else ())
    assert report.unresolved == ()
    failed = _only(broker)
    assert (failed.state, failed.fault, failed.reason) == (
        S.FAILED,
        Fault.OPERATOR,
        INTERRUPTED_REASON,
    )
    assert not failed.reservation_open
    check_books(broker.broker, {"acme": MINTED, "globex": MINTED})
    release = broker.broker.store.transfer(transfer_id(left.id, Step.RELEASE, Kind.CPU))
    if reserved:
        # Voided through the ledger, as the operator's fault: a refund.
        assert release is not None
        assert (release.result, release.transfer.code) == (Result.OK, int(Code.REFUND))
    else:
        # Nothing was voided blindly: a void of a pending transfer that does not exist would
        # be recorded as failed under the release's id (A9) and poison it.
        assert release is None
    # The retry of the client that saw no answer returns the failed request, and a second
    # recovery (a second replica starting) finds nothing more to do.
    retried, created = broker.broker.requests.submit(acme, spec(), "k1")
    assert (retried.id, created) == (left.id, False)
    assert broker.broker.recover().clean


def test_a_reservation_whose_request_was_never_stored_is_released(broker: BrokerHandle) -> None:
    # What a broker of the earlier version left when killed between reserving and storing.
    _ready(broker)
    orphan = new_request_id()
    broker.broker.requests.reservations.reserve(orphan, "acme", Cost(600, 3000, 16), 7200)
    assert _escrow_pending(broker) == 600

    report = broker.broker.recover()

    assert (report.failed, report.released, report.unresolved) == ((), (orphan,), ())
    assert _escrow_pending(broker) == 0
    release = broker.broker.store.transfer(transfer_id(orphan, Step.RELEASE, Kind.STORAGE))
    assert release is not None
    assert (release.result, release.transfer.code) == (Result.OK, int(Code.RELEASE))
    assert release.transfer.user_data == bytes.fromhex(orphan)
    check_books(broker.broker, {"acme": MINTED})
    assert broker.broker.recover().clean


@pytest.mark.parametrize(
    "recovery_first", [True, False], ids=["recover-then-reserve", "reserve-then-recover"]
)
def test_a_submit_that_a_starting_replica_fails_meanwhile_releases_its_own_reservation(
    broker: BrokerHandle, recovery_first: bool
) -> None:
    # Another replica starts while this one is inside Submit: its recovery fails the SUBMITTED
    # request before or after the reservation lands; either way nothing is left reserved.
    _ready(broker)
    recover = broker.broker.recover
    if recovery_first:
        _wrap_reserve(broker, lambda: _check(recover().failed), _nothing)
    else:
        _wrap_reserve(broker, _nothing, lambda: _check(recover().failed))
    acme = OPERATOR
    request, created = broker.broker.requests.submit(acme, spec(), "k1", tenant="acme")
    assert created
    assert (request.state, request.fault, request.reservation_open) == (
        S.FAILED,
        Fault.OPERATOR,
        False,
    )
    check_books(broker.broker, {"acme": MINTED})
    assert broker.broker.recover().clean


def test_a_request_cancelled_while_submitted_releases_what_its_submit_reserves(
    broker: BrokerHandle,
) -> None:
    _ready(broker)
    requests = broker.broker.requests

    def cancel_it() -> None:
        (submitted,) = requests.store.all()
        assert requests.cancel(OPERATOR, submitted.id).state is S.CANCELLED

    _wrap_reserve(broker, cancel_it, _nothing)
    request, created = requests.submit(OPERATOR, spec(), "k1", tenant="acme")
    assert created
    assert (request.state, request.reservation_open) == (S.CANCELLED, False)
    check_books(broker.broker, {"acme": MINTED})
    assert broker.broker.recover().clean


def test_a_clean_start_recovers_nothing(broker: BrokerHandle) -> None:
    _ready(broker)
    acme = add_tenant(broker.broker, "globex")
    first, _ = broker.broker.requests.submit(acme, spec(), "k1")
    assert (first.state, first.reservation_open) == (S.PENDING, True)
    assert broker.broker.recover().clean
    assert _only(broker).state is S.PENDING
    check_books(broker.broker, {"acme": MINTED, "globex": MINTED})


def _check(failed: tuple[str, ...]) -> None:
    assert len(failed) == 1


def _escrow_pending(broker: BrokerHandle) -> int:
    (escrow,) = [
        a
        for a in broker.broker.store.system_accounts()
        if a.system is SystemAccount.ESCROW and a.kind is Kind.CPU
    ]
    return escrow.credits_pending


# -- the crash point hook ----------------------------------------------------------------------

_PROBE = (
    "from orbitq.services import crashpoint\n"
    "for i in range(3):\n"
    "    crashpoint.reached('other')\n"
    "    crashpoint.reached('probe')\n"
    "    print(i, flush=True)\n"
)


@pytest.mark.parametrize(
    ("armed", "printed", "killed"),
    [
        ("", "0\n1\n2\n", False),
        ("probe", "", True),
        ("probe:2", "0\n", True),
        ("x:9", "0\n1\n2\n", False),
    ],
)
def test_a_crash_point_kills_only_when_armed_and_only_at_its_count(
    armed: str, printed: str, killed: bool
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ORBITQ_CRASH_AT"}
    if armed:
        env["ORBITQ_CRASH_AT"] = armed
    run = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.stdout == printed
    assert run.returncode == (-9 if killed else 0), run.stderr
    assert ("crash point probe reached" in run.stderr) == killed


def test_a_malformed_crash_point_is_refused_at_import() -> None:
    env = dict(os.environ, ORBITQ_CRASH_AT="probe:zero")
    run = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "use a point name, optionally ':N'" in run.stderr
