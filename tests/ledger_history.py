"""A realistic ledger history made through the real server and SDK, for the ledger tests.

Tenants, mints, tenant-to-tenant transfers, two-phase transfers (pending, partial post, void,
expiry) and a recorded failure, then a signed checkpoint. Also the low-level tools the tamper
tests use to corrupt a broker's database the way an attacker with write access would.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from orbitq.clients import BrokerClient, FailedPreconditionError, TransferSpec, new_id
from orbitq.ledger import merkle
from orbitq.ledger.checkpoint import Checkpoint
from orbitq.ledger.entries import decode_entry
from orbitq.services.auth import SYSTEM
from orbitq.services.broker import Broker
from orbitq.services.clock import SimulatedClock
from orbitq.services.config import KEY_FILE, load_config, write_config
from orbitq.services.identity.api_keys import Role
from orbitq.services.identity.signing_key import create_key_file
from orbitq.services.server import build_server
from tests.conftest import ServerHandle

ORIGIN = "orbitq.test/ledger"


@dataclass(frozen=True)
class History:
    acme_key: str
    # Transfer ids (ints) by what they did.
    transfers: dict[str, int]
    checkpoint: Checkpoint


def operator(server: ServerHandle, trust_dir: Path, **options: object) -> BrokerClient:
    return BrokerClient(server.target, server.operator_key, trust_dir=trust_dir, **options)  # type: ignore[arg-type]


def build_history(server: ServerHandle, clock: SimulatedClock, trust_dir: Path) -> History:
    broker = server.broker
    ids = {name: new_id() for name in ("reserve", "reserve_void", "reserve_expire", "post", "void")}
    with operator(server, trust_dir) as admin:
        admin.create_tenant("acme", "Acme Orbital")
        admin.create_tenant("globex")
        admin.mint("acme", cpu=1000, storage=500, link=100)
        admin.mint("globex", cpu=200)
        acme_key = admin.issue_api_key("tenant", "acme").api_key
        acme_cpu = next(a.id for a in admin.balances("acme") if a.kind == "cpu")
        escrow_cpu = next(
            a.id for a in admin.balances(system=True) if a.kind == "cpu" and a.system == "escrow"
        )

        def reserve(name: str, amount: int, timeout: int) -> TransferSpec:
            return TransferSpec(
                id=ids[name],
                debit_account_id=acme_cpu,
                credit_account_id=escrow_cpu,
                amount=amount,
                kind="cpu",
                code="reserve",
                pending=True,
                timeout_seconds=timeout,
            )

        outcomes = admin.create_transfers(
            [
                reserve("reserve", 300, 3600),
                reserve("reserve_void", 100, 3600),
                reserve("reserve_expire", 50, 1),
            ]
        )
        assert [o.result for o in outcomes] == ["ok", "ok", "ok"]
        outcomes = admin.create_transfers(
            [
                TransferSpec(
                    id=ids["post"],
                    pending_id=ids["reserve"],
                    amount=250,
                    code="settle",
                    post_pending=True,
                ),
                TransferSpec(
                    id=ids["void"],
                    pending_id=ids["reserve_void"],
                    code="release",
                    void_pending=True,
                ),
            ]
        )
        assert [o.result for o in outcomes] == ["ok", "ok"]
    with BrokerClient(server.target, acme_key, trust_dir=trust_dir) as acme:
        acme.transfer("globex", cpu=100, link=10)
        # A transient failure is recorded in the log (A9): a retry can never succeed later.
        failed = new_id()
        with pytest.raises(FailedPreconditionError, match="insufficient storage"):
            acme.transfer("globex", storage=10**6, id=failed)
    clock.advance(10)
    broker.expire_due()  # reserve_expire's timeout passed: an EXPIRE void transfer
    checkpoint = broker.sign_checkpoint()
    return History(acme_key, ids, checkpoint)


# -- tampering ---------------------------------------------------------------------------------


def sql(broker: Broker, statement: str, *params: object) -> list[tuple[object, ...]]:
    """Run one statement (`?` placeholders) directly on the broker's database."""
    engine = broker.engine
    if engine.dialect.name == "postgresql":
        statement = statement.replace("?", "%s")
    with engine.begin() as conn:
        result = conn.exec_driver_sql(statement, tuple(params))
        return [tuple(row) for row in result] if result.returns_rows else []


def entry_rows(broker: Broker) -> list[tuple[int, bytes, bytes]]:
    rows = sql(broker, "SELECT idx, data, hashes FROM ledger_entries ORDER BY idx")
    return [(int(i), bytes(d), bytes(h)) for i, d, h in rows]  # type: ignore[call-overload]


def transfer_entries(broker: Broker) -> list[int]:
    """Indices of the entries that record transfers."""
    return [i for i, data, _ in entry_rows(broker) if decode_entry(data).transfer is not None]


def flip_byte(broker: Broker, index: int, offset: int) -> None:
    data = bytearray({i: d for i, d, _ in entry_rows(broker)}[index])
    data[offset] ^= 0x01
    sql(broker, "UPDATE ledger_entries SET data = ? WHERE idx = ?", bytes(data), index)


def rewrite_entries(broker: Broker, replacements: dict[int, bytes]) -> None:
    """Replace entries' bytes and recompute every stored hash from the first one on, as a
    careful attacker would (so only signed checkpoints can tell)."""
    rows = entry_rows(broker)
    frontier = merkle.Frontier.empty()
    for index, stored, _ in rows:
        data = replacements.get(index, stored)
        hashes = b"".join(frontier.append(merkle.leaf_hash(data)))
        if index >= min(replacements):
            sql(
                broker,
                "UPDATE ledger_entries SET data = ?, hashes = ? WHERE idx = ?",
                data,
                hashes,
                index,
            )


def sizes(rows: Sequence[tuple[object, ...]]) -> list[int]:
    return [int(row[0]) for row in rows]  # type: ignore[call-overload]


@contextmanager
def another_broker(
    tmp_path: Path, clock: SimulatedClock, *, key_file: Path | None = None
) -> Iterator[ServerHandle]:
    """A second broker with the same origin, on its own SQLite database: with its own new key,
    or (given `key_file`) with the same signing key as another broker — a diverging history."""
    data_dir = tmp_path / f"other-{secrets.token_hex(3)}"
    data_dir.mkdir(mode=0o700)
    db_url = f"sqlite:///{data_dir / 'orbitq.db'}"
    write_config(data_dir, ORIGIN, db_url)
    key_path = data_dir / KEY_FILE
    if key_file is None:
        create_key_file(key_path)
    else:
        shutil.copyfile(key_file, key_path)
        key_path.chmod(0o600)
    config = replace(load_config(data_dir, db_url=db_url), checkpoint_interval_seconds=3600)
    broker = Broker(config, clock)
    broker.writer.start()
    running = build_server(broker, "127.0.0.1:0")
    try:
        issued = broker.tenants.issue_key(SYSTEM, Role.OPERATOR, "", "", "tests")
        broker.sign_checkpoint()
        yield ServerHandle(f"127.0.0.1:{running.port}", issued.token, broker, running)
    finally:
        running.stop(grace=1.0)
        broker.writer.stop()
        broker.engine.dispose()
