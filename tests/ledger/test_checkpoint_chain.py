"""The checkpoint chain (L19): the line written and parsed strictly, the store's checkpoints
linked one to the next with the head row naming the newest, and a ledger whose checkpoints were
signed before the chain (migration 0007) still audits, its old checkpoints counted."""

from __future__ import annotations

from itertools import count

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from orbitq.ledger import CheckpointFormatError, CheckpointIntegrityError, Signer
from orbitq.ledger.audit import audit_store
from orbitq.ledger.checkpoint import parse_checkpoint_body, sign_checkpoint
from orbitq.ledger.checkpoint_chain import ChainLink, body_hash, chain_line, chain_link_of
from orbitq.ledger.entries import decode_entry
from orbitq.ledger.merkle import EMPTY_ROOT
from orbitq.ledger.model import Kind
from orbitq.ledger.store import AccountSpec, LedgerStore
from orbitq.ledger.store.rows import checkpoint_of
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import _MIGRATIONS as MIGRATIONS
from orbitq.services.db.migrate import migrate

ORIGIN = "chain.test/ledger"
HASH = bytes(range(32))


def body(*extensions: str) -> str:
    lines = [ORIGIN, "5", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", *extensions]
    return "".join(f"{line}\n" for line in lines)


def test_a_chain_line_round_trips() -> None:
    for link in (ChainLink(1, 0, None), ChainLink(7, 1_764_979_200_000_000_000, HASH)):
        parsed = chain_link_of(parse_checkpoint_body(body("other ext", chain_line(link))))
        assert parsed == link
    assert chain_link_of(parse_checkpoint_body(body())) is None
    assert chain_link_of(parse_checkpoint_body(body("orbitq-chainless 1 2 -"))) is None


@pytest.mark.parametrize(
    "line",
    [
        "orbitq-chain 0 5 -",  # seq starts at 1
        "orbitq-chain 01 5 -",  # no leading zeros
        "orbitq-chain 1 -5 -",
        "orbitq-chain 1 5",  # a part missing
        "orbitq-chain 1 5 - x",
        "orbitq-chain 2 5 -",  # only the first names no previous one
        f"orbitq-chain 1 5 {'A' * 43}=",  # ... and the first names none
        "orbitq-chain 2 5 AAAA",  # 3 bytes, not 32
        "orbitq-chain 2 5 AAA=",  # not canonical base64
        "orbitq-chain 9223372036854775808 5 AAAA",  # above 2^63 - 1
    ],
)
def test_a_malformed_chain_line_is_refused(line: str) -> None:
    with pytest.raises(CheckpointFormatError):
        chain_link_of(parse_checkpoint_body(body(line)))


def test_two_chain_lines_are_refused() -> None:
    line = chain_line(ChainLink(1, 5, None))
    with pytest.raises(CheckpointFormatError, match="2 orbitq-chain lines"):
        chain_link_of(parse_checkpoint_body(body(line, line)))


def test_chain_line_refuses_what_it_could_not_parse() -> None:
    with pytest.raises(ValueError, match="only it"):
        chain_line(ChainLink(2, 5, None))
    with pytest.raises(ValueError, match="32"):
        chain_line(ChainLink(2, 5, b"short"))


def _store(db_url: str) -> tuple[LedgerStore, sa.Engine, count[int]]:
    engine = create_engine(db_url)
    migrate(engine)
    store = LedgerStore(engine)
    clock = count(1_764_979_200_000_000_000, 1_000_000)
    store.initialize(next(clock))
    return store, engine, clock


def test_stored_checkpoints_are_chained_and_the_head_names_the_newest(db_url: str) -> None:
    store, engine, clock = _store(db_url)
    signer = Signer.generate(ORIGIN)
    try:
        signed = []
        for tenant in ("acme", "globex", "initech"):
            store.create_accounts([AccountSpec(Kind.CPU, tenant=tenant)], next(clock))
            signed.append((store.sign_checkpoint(signer, ORIGIN, now := next(clock)), now))
        previous = None
        for seq, (checkpoint, now) in enumerate(signed, 1):
            assert chain_link_of(checkpoint) == ChainLink(seq, now, previous)
            previous = body_hash(checkpoint)
        head = store.head()
        assert (head.checkpoints, head.checkpoint_hash) == (3, previous)
        # Nothing new: no new checkpoint, the chain and the head unchanged.
        assert store.sign_checkpoint(signer, ORIGIN, next(clock)) == signed[-1][0]
        assert store.head() == head
        assert audit_store(store, signer.verifier()).checkpoints == 3
    finally:
        engine.dispose()


def _revision(engine: sa.Engine, revision: str, *, down: bool) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_a_ledger_from_before_the_chain_migrates_and_audits(db_url: str) -> None:
    store, engine, clock = _store(db_url)
    signer = Signer.generate(ORIGIN)
    mark = "%s" if engine.dialect.name == "postgresql" else "?"
    try:
        for tenant in ("acme", "globex"):
            store.create_accounts([AccountSpec(Kind.CPU, tenant=tenant)], next(clock))
            store.sign_checkpoint(signer, ORIGIN, next(clock))
        # As signed before migration 0007: no chain line. And the head's last timestamp may run
        # ahead of the log (a rolled-back chain took timestamps).
        with engine.begin() as conn:
            rows = conn.exec_driver_sql("SELECT size, root_hash FROM ledger_checkpoints").all()
            for size, root in rows:
                note = sign_checkpoint(ORIGIN, int(size), bytes(root), signer)
                conn.exec_driver_sql(
                    f"UPDATE ledger_checkpoints SET note = {mark} WHERE size = {mark}", (note, size)
                )
            conn.exec_driver_sql("UPDATE ledger_head SET last_timestamp_ns = last_timestamp_ns + 7")
        _revision(engine, "0006", down=True)
        _revision(engine, "head", down=False)
        head = store.head()
        newest = store.latest_checkpoint()
        assert newest is not None
        assert chain_link_of(newest) is None
        assert (head.checkpoints, head.checkpoint_hash) == (2, body_hash(newest))
        last = store.log.entries(head.size - 1, head.size)[0][1]
        assert head.last_timestamp_ns == decode_entry(last).timestamp_ns
        audit_store(store, signer.verifier())
        # The next checkpoint continues the count after the old ones.
        store.create_accounts([AccountSpec(Kind.CPU, tenant="initech")], next(clock))
        chained = store.sign_checkpoint(signer, ORIGIN, next(clock))
        assert chain_link_of(chained) == ChainLink(3, chained_time(store), body_hash(newest))
        assert audit_store(store, signer.verifier()).checkpoints == 3
        # An old checkpoint deleted is still seen: the chained one counts it.
        with engine.begin() as conn:
            oldest = "(SELECT MIN(size) FROM ledger_checkpoints)"
            conn.exec_driver_sql(f"DELETE FROM ledger_checkpoints WHERE size = {oldest}")
        with pytest.raises(
            CheckpointIntegrityError, match="checkpoints signed before it were deleted"
        ) as caught:
            audit_store(store, signer.verifier())
        assert caught.value.size == chained.size
    finally:
        engine.dispose()


def chained_time(store: LedgerStore) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.exec_driver_sql("SELECT MAX(timestamp_ns) FROM ledger_checkpoints").scalar_one()
        )


def test_the_empty_log_starts_the_chain(db_url: str) -> None:
    store, engine, clock = _store(db_url)
    signer = Signer.generate(ORIGIN)
    try:
        # initialize() created the system accounts; a checkpoint over them is #1.
        first = store.sign_checkpoint(signer, ORIGIN, next(clock))
        link = chain_link_of(first)
        assert link is not None
        assert (link.seq, link.previous) == (1, None)
        assert checkpoint_of(first.note).root_hash != EMPTY_ROOT
    finally:
        engine.dispose()
