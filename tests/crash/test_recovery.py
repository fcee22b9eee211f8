"""Recovery at start releases reservations no request owns, and only those, on SQLite and
PostgreSQL, in-process (the kill -9 suite in this package proves it on real processes).

Such a reservation is what a broker of the earlier version left when killed between reserving
and storing the request; here it is made the same way, by reserving through the real ledger
writer for a request id that is never stored.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orbitq.clients import new_id
from orbitq.ledger.model import Code, Kind, Outcome, Result, SystemAccount, Transfer, TransferFlag
from orbitq.ledger.store import CreateTransfers
from orbitq.services.requests.lifecycle import CANCELLABLE, Move
from orbitq.services.requests.model import RequestState
from orbitq.services.requests.reservations import Step, transfer_id
from orbitq.services.requests.store import new_request_id
from orbitq.services.scheduler import Cost
from tests.conftest import BrokerHandle
from tests.requests.books import check_books
from tests.requests.sky import MINTED, OPERATOR, add_tenant, build_world, spec

pytestmark = pytest.mark.settlement("plan")
S = RequestState


def _ready(broker: BrokerHandle) -> None:
    build_world(broker.broker, satellites=6, hours=2)
    add_tenant(broker.broker, "acme")


def test_a_reservation_whose_request_was_never_stored_is_released(broker: BrokerHandle) -> None:
    _ready(broker)
    kept, _ = broker.broker.requests.submit(OPERATOR, spec(), "k1", tenant="acme")
    orphan = new_request_id()
    broker.broker.requests.reservations.reserve(orphan, "acme", Cost(600, 3000, 16), 7200)
    assert _escrow_pending(broker) == 2 * 600

    report = broker.broker.recover()

    assert (report.released, report.unresolved) == ((orphan,), ())
    assert _escrow_pending(broker) == 600  # the stored request keeps its own
    for kind in (Kind.CPU, Kind.STORAGE, Kind.LINK):
        release = broker.broker.store.transfer(transfer_id(orphan, Step.RELEASE, kind))
        assert release is not None
        assert (release.result, release.transfer.code) == (Result.OK, int(Code.RELEASE))
        assert release.transfer.user_data == bytes.fromhex(orphan)
    assert broker.broker.requests.stored(kept.id) == kept
    check_books(broker.broker, {"acme": MINTED})
    # A second replica starting, or this one again, finds nothing more to do.
    assert broker.broker.recover().clean


def test_an_owed_reservation_is_left_to_the_scheduling_loop(broker: BrokerHandle) -> None:
    # A terminal request whose reservation is still open (a crash between its transition and
    # the ledger) owns it: the loop's pass over owed reservations resolves it, not recovery.
    _ready(broker)
    requests = broker.broker.requests
    request, _ = requests.submit(OPERATOR, spec(), "k1", tenant="acme")
    (cancelled,) = requests.store.apply(
        [Move(request.id, CANCELLABLE, S.CANCELLED, "cancelled, then the broker died")], 1
    )
    assert cancelled is not None
    assert cancelled.reservation_open

    assert broker.broker.recover().clean

    assert _escrow_pending(broker) == 600
    broker.broker.scheduling.advance()
    assert _escrow_pending(broker) == 0
    check_books(broker.broker, {"acme": MINTED})


def test_a_pending_reserve_that_is_not_a_requests_is_left_alone(broker: BrokerHandle) -> None:
    # An operator's own two-phase transfer with code `reserve` and 16 bytes of user_data: its
    # id is not the one derived from them, so it is not a request's reservation.
    _ready(broker)
    accounts = broker.broker.quota.account_ids("acme")
    escrow = broker.broker.quota.system_account_ids()
    own = Transfer(
        id=new_id(),
        debit_account_id=accounts[Kind.CPU],
        credit_account_id=escrow[(SystemAccount.ESCROW, Kind.CPU)],
        amount=5,
        user_data=bytes.fromhex(new_request_id()),
        kind=int(Kind.CPU),
        code=int(Code.RESERVE),
        flags=int(TransferFlag.PENDING),
        timeout_seconds=3600,
    )
    (outcome,) = broker.broker.writer.apply(CreateTransfers((own,)))
    assert isinstance(outcome, Outcome)
    assert outcome.result is Result.OK

    assert broker.broker.recover().clean
    assert _escrow_pending(broker) == 5


def test_a_clean_start_recovers_nothing(broker: BrokerHandle) -> None:
    _ready(broker)
    first, _ = broker.broker.requests.submit(OPERATOR, spec(), "k1", tenant="acme")
    assert broker.broker.recover().clean
    assert broker.broker.requests.stored(first.id) == first
    check_books(broker.broker, {"acme": MINTED})


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
