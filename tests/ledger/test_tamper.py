"""The offline audit on a real broker database (SQLite and PostgreSQL) with a realistic history:
clean, it passes; each kind of tampering is caught, and the first bad entry is named."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from orbitq.clients import TransferSpec
from orbitq.ledger import (
    AccountIntegrityError,
    BalanceMismatchError,
    CheckpointIntegrityError,
    EntryIntegrityError,
    HeadIntegrityError,
    LedgerIntegrityError,
    Signer,
    sign_checkpoint,
)
from orbitq.ledger.audit import AuditReport, audit_store
from orbitq.ledger.entries import decode_entry
from orbitq.services.clock import SimulatedClock
from tests.conftest import ServerHandle
from tests.ledger_history import (
    History,
    build_history,
    entry_rows,
    flip_byte,
    operator,
    rewrite_entries,
    sizes,
    sql,
    transfer_entries,
)


@pytest.fixture
def history(server: ServerHandle, clock: SimulatedClock, tmp_path: Path) -> History:
    return build_history(server, clock, tmp_path / "trust")


def audit(server: ServerHandle) -> AuditReport:
    broker = server.broker
    return audit_store(broker.store, broker.signer.verifier())


def test_a_clean_ledger_passes(server: ServerHandle, history: History) -> None:
    progress: list[tuple[int, int]] = []
    broker = server.broker
    report = audit_store(
        broker.store, broker.signer.verifier(), progress=lambda d, t: progress.append((d, t))
    )
    size = broker.store.head().size
    assert report.entries == report.tree_size == size == history.checkpoint.size
    assert report.root_hash == history.checkpoint.root_hash
    assert report.checkpoints == 2
    assert report.newest_checkpoint is not None
    assert report.newest_checkpoint.size == size
    assert report.accounts == len(broker.store.all_accounts())
    # mints, the transfer, the pending/post/void/expire and the recorded failure
    assert report.transfers == len(transfer_entries(broker)) >= 12
    assert progress[-1] == (size, size)
    # A root verified before (e.g. by a client) must be reproduced by the stored log.
    audit_store(
        broker.store,
        broker.signer.verifier(),
        known_roots={history.checkpoint.size: history.checkpoint.root_hash},
    )


def test_a_flipped_byte_names_the_entry(server: ServerHandle, history: History) -> None:
    target = transfer_entries(server.broker)[4]
    flip_byte(server.broker, target, 12)
    with pytest.raises(EntryIntegrityError, match="leaf hash differs") as caught:
        audit(server)
    assert caught.value.index == target
    assert str(caught.value).startswith(f"entry {target}: ")


def test_a_flipped_byte_in_a_stored_hash_names_the_entry(
    server: ServerHandle, history: History
) -> None:
    target = 7  # 7 + 1 = 8: the row stores levels 0..3
    hashes = entry_rows(server.broker)[target][2]
    assert len(hashes) == 4 * 32
    changed = hashes[:70] + bytes([hashes[70] ^ 0x80]) + hashes[71:]
    sql(server.broker, "UPDATE ledger_entries SET hashes = ? WHERE idx = ?", changed, target)
    with pytest.raises(EntryIntegrityError, match=r"stored hash of level 2 \(leaves 4..7\)") as e:
        audit(server)
    assert e.value.index == target


def test_a_deleted_entry_is_named(server: ServerHandle, history: History) -> None:
    target = transfer_entries(server.broker)[2]
    sql(server.broker, "DELETE FROM ledger_entries WHERE idx = ?", target)
    with pytest.raises(EntryIntegrityError, match="the entry is missing") as caught:
        audit(server)
    assert caught.value.index == target


def test_the_deleted_last_entry_is_named(server: ServerHandle, history: History) -> None:
    last = server.broker.store.head().size - 1
    sql(server.broker, "DELETE FROM ledger_entries WHERE idx = ?", last)
    with pytest.raises(EntryIntegrityError, match="missing") as caught:
        audit(server)
    assert caught.value.index == last


@pytest.mark.parametrize("with_hashes", [False, True])
def test_reordered_entries_are_named(
    server: ServerHandle, history: History, with_hashes: bool
) -> None:
    rows = entry_rows(server.broker)
    first, second = transfer_entries(server.broker)[3], transfer_entries(server.broker)[6]
    for index, (_, data, hashes) in ((first, rows[second]), (second, rows[first])):
        if with_hashes:
            sql(
                server.broker,
                "UPDATE ledger_entries SET data = ?, hashes = ? WHERE idx = ?",
                data,
                hashes,
                index,
            )
        else:
            sql(server.broker, "UPDATE ledger_entries SET data = ? WHERE idx = ?", data, index)
    with pytest.raises(EntryIntegrityError) as caught:
        audit(server)
    assert caught.value.index == first


def test_a_rewritten_history_with_recomputed_hashes_fails_the_checkpoint(
    server: ServerHandle, history: History
) -> None:
    # A careful attacker mints acme 1001 instead of 1000 cpu: the entry, every stored hash after
    # it, the transfer row and both balances agree again. Only the signed checkpoint can tell.
    broker = server.broker
    target, data = next(
        (index, data)
        for index, data, _ in entry_rows(broker)
        if (transfer := decode_entry(data).transfer) is not None and transfer.amount == 1000
    )
    transfer = decode_entry(data).transfer
    assert transfer is not None
    forged = data.replace(b"\x20\xe8\x07", b"\x20\xe9\x07")  # amount varint 1000 -> 1001
    assert forged != data
    rewrite_entries(broker, {target: forged})
    sql(
        broker,
        "UPDATE ledger_transfers SET amount = 1001 WHERE entry_index = ?",
        target,
    )
    sql(
        broker,
        "UPDATE ledger_accounts SET debits_posted = debits_posted + 1 WHERE id = ?",
        transfer.debit_account_id,
    )
    sql(
        broker,
        "UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = ?",
        transfer.credit_account_id,
    )
    with pytest.raises(CheckpointIntegrityError, match="root differs") as caught:
        audit(server)
    assert caught.value.size == history.checkpoint.size


def test_an_altered_balance_names_the_account(server: ServerHandle, history: History) -> None:
    acme_cpu = next(a for a in server.broker.store.accounts_of("acme") if a.kind == 1)
    sql(
        server.broker,
        "UPDATE ledger_accounts SET credits_posted = credits_posted + 100 WHERE id = ?",
        acme_cpu.id,
    )
    with pytest.raises(BalanceMismatchError) as caught:
        audit(server)
    assert caught.value.account_id == acme_cpu.id
    expected = (
        f"account {acme_cpu.id} (acme cpu): stored credits_posted "
        f"{acme_cpu.credits_posted + 100}, replay gives {acme_cpu.credits_posted}"
    )
    assert str(caught.value) == expected


def test_an_altered_transfer_row_names_its_entry(server: ServerHandle, history: History) -> None:
    post = history.transfers["post"]
    stored = server.broker.store.transfer(post)
    assert stored is not None
    sql(
        server.broker,
        "UPDATE ledger_transfers SET amount = 260 WHERE id = ?",
        post.to_bytes(16, "big"),
    )
    with pytest.raises(EntryIntegrityError, match="stored amount 260, the entry says 250") as e:
        audit(server)
    assert e.value.index == stored.entry_index


def test_a_replaced_checkpoint_signature_is_caught(server: ServerHandle, history: History) -> None:
    note = history.checkpoint.note
    body, _, signature_line = note.rpartition("\n\n")
    forger = Signer.generate("orbitq.test/ledger")
    forged_line = sign_checkpoint(
        "orbitq.test/ledger", history.checkpoint.size, history.checkpoint.root_hash, forger
    ).rpartition("\n\n")[2]
    assert forged_line != signature_line
    sql(
        server.broker,
        "UPDATE ledger_checkpoints SET note = ? WHERE size = ?",
        f"{body}\n\n{forged_line}",
        history.checkpoint.size,
    )
    with pytest.raises(CheckpointIntegrityError, match="does not verify") as caught:
        audit(server)
    assert caught.value.size == history.checkpoint.size


def test_a_checkpoint_from_a_different_key_is_caught(
    server: ServerHandle, history: History
) -> None:
    # Signed by another key that has the same name: the audit trusts only the broker's key.
    other = Signer.generate("orbitq.test/ledger")
    note = sign_checkpoint(
        "orbitq.test/ledger", history.checkpoint.size, history.checkpoint.root_hash, other
    )
    sql(
        server.broker,
        "UPDATE ledger_checkpoints SET note = ? WHERE size = ?",
        note,
        history.checkpoint.size,
    )
    with pytest.raises(CheckpointIntegrityError) as caught:
        audit(server)
    assert caught.value.size == history.checkpoint.size
    # ... and verified with the other key, it is every other checkpoint that fails.
    with pytest.raises(LedgerIntegrityError):
        audit_store(server.broker.store, other.verifier())


def test_the_audit_names_the_first_of_several_bad_entries(
    server: ServerHandle, history: History
) -> None:
    entries = transfer_entries(server.broker)
    flip_byte(server.broker, entries[8], 12)
    flip_byte(server.broker, entries[5], 12)
    with pytest.raises(EntryIntegrityError) as caught:
        audit(server)
    assert caught.value.index == entries[5]


def test_a_transfer_row_without_an_entry_is_caught(server: ServerHandle, history: History) -> None:
    failed = [
        i
        for i, data, _ in entry_rows(server.broker)
        if (entry := decode_entry(data)).result is not None and entry.result.value != 1
    ]
    assert len(failed) == 1  # the recorded failure of the history
    sql(
        server.broker,
        "UPDATE ledger_transfers SET entry_index = NULL WHERE entry_index = ?",
        failed[0],
    )
    with pytest.raises(EntryIntegrityError) as caught:
        audit(server)
    assert caught.value.index == failed[0]


def test_a_pending_status_row_must_match_the_replay(server: ServerHandle, history: History) -> None:
    reserve = history.transfers["reserve_void"]
    sql(
        server.broker,
        "UPDATE ledger_pending SET status = 1 WHERE id = ?",
        reserve.to_bytes(16, "big"),
    )
    stored = server.broker.store.transfer(reserve)
    assert stored is not None
    with pytest.raises(EntryIntegrityError, match=r"says pending .* replay says voided") as e:
        audit(server)
    assert e.value.index == stored.entry_index


def test_values_of_the_wrong_type_are_named_not_crashed_on(
    server: ServerHandle, history: History
) -> None:
    target = transfer_entries(server.broker)[2]
    if server.broker.engine.dialect.name != "sqlite":
        # PostgreSQL enforces column types; SQLite stores any type in any column.
        with pytest.raises(DBAPIError):
            sql(server.broker, "UPDATE ledger_entries SET data = 'x'::text WHERE idx = ?", target)
        return
    original = entry_rows(server.broker)[target][1]
    sql(server.broker, "UPDATE ledger_entries SET data = 'not bytes' WHERE idx = ?", target)
    with pytest.raises(EntryIntegrityError, match="wrong type") as caught:
        audit(server)
    assert caught.value.index == target
    sql(server.broker, "UPDATE ledger_entries SET data = ? WHERE idx = ?", original, target)
    audit(server)
    sql(server.broker, "UPDATE ledger_accounts SET credits_posted = 'lots' WHERE id = 4")
    with pytest.raises(AccountIntegrityError, match=r"account 4 .*malformed"):
        audit(server)


# -- issue 16.2: the head row's counters and the sequence of stored checkpoints -----------------


def grown(server: ServerHandle, history: History, tmp_path: Path) -> list[int]:
    """More entries and a third checkpoint after the history's two: their sizes, oldest first."""
    with operator(server, tmp_path / "grow-trust") as admin:
        admin.create_tenant("initech")
    server.broker.sign_checkpoint()
    found = sizes(sql(server.broker, "SELECT size FROM ledger_checkpoints ORDER BY size"))
    assert len(found) == 3
    return found


@pytest.mark.parametrize(("column", "delta"), [("next_account_id", 1), ("next_account_id", -1)])
def test_a_changed_next_account_id_is_named(
    server: ServerHandle, history: History, column: str, delta: int
) -> None:
    sql(server.broker, f"UPDATE ledger_head SET {column} = {column} + ?", delta)
    with pytest.raises(HeadIntegrityError, match=r"^head row: next_account_id \d+, but") as e:
        audit(server)
    assert e.value.column == column


@pytest.mark.parametrize("delta", [1, -1, -(10**9)])
def test_a_changed_last_timestamp_is_named(
    server: ServerHandle, history: History, delta: int
) -> None:
    sql(server.broker, "UPDATE ledger_head SET last_timestamp_ns = last_timestamp_ns + ?", delta)
    with pytest.raises(HeadIntegrityError, match=r"last_timestamp_ns \d+, but the newest entry"):
        audit(server)


def test_the_head_follows_the_newest_entry_after_a_rolled_back_chain(
    server: ServerHandle, history: History, tmp_path: Path
) -> None:
    # A linked chain that fails takes timestamps and leaves nothing: the head still names the
    # newest entry's timestamp, so V20 can check it.
    before = server.broker.store.head()
    with operator(server, tmp_path / "chain-trust") as admin:
        acme_cpu = next(a.id for a in admin.balances("acme") if a.kind == "cpu")
        treasury_cpu = next(
            a.id for a in admin.balances(system=True) if a.kind == "cpu" and a.system == "treasury"
        )
        outcomes = admin.create_transfers(
            [
                TransferSpec(
                    debit_account_id=treasury_cpu,
                    credit_account_id=acme_cpu,
                    amount=5,
                    kind="cpu",
                    code="mint",
                    linked=True,
                ),
                # Takes a timestamp, then fails in a way the ledger does not record (A9).
                TransferSpec(
                    pending_id=history.transfers["reserve"], code="settle", post_pending=True
                ),
            ]
        )
    assert [o.result for o in outcomes] == [
        "linked_event_failed",
        "pending_transfer_already_posted",
    ]
    assert server.broker.store.head() == before
    newest = entry_rows(server.broker)[-1][1]
    assert server.broker.store.head().last_timestamp_ns == decode_entry(newest).timestamp_ns
    audit(server)


def test_a_changed_checkpoint_timestamp_is_named(server: ServerHandle, history: History) -> None:
    size = history.checkpoint.size
    sql(
        server.broker,
        "UPDATE ledger_checkpoints SET timestamp_ns = timestamp_ns + 1 WHERE size = ?",
        size,
    )
    with pytest.raises(CheckpointIntegrityError, match=r"stored timestamp_ns .* differs") as e:
        audit(server)
    assert e.value.size == size


def test_a_deleted_newest_checkpoint_is_named(
    server: ServerHandle, history: History, tmp_path: Path
) -> None:
    _, second, newest = grown(server, history, tmp_path)
    sql(server.broker, "DELETE FROM ledger_checkpoints WHERE size = ?", newest)
    with pytest.raises(
        HeadIntegrityError,
        match=f"records 3 checkpoints signed, .* but 2 are stored \\(the newest stored is "
        f"checkpoint {second}\\): checkpoint #3 was deleted",
    ) as e:
        audit(server)
    assert e.value.column == "checkpoints"


@pytest.mark.parametrize("deleted", [0, 1])
def test_a_deleted_older_checkpoint_is_named(
    server: ServerHandle, history: History, tmp_path: Path, deleted: int
) -> None:
    found = grown(server, history, tmp_path)
    sql(server.broker, "DELETE FROM ledger_checkpoints WHERE size = ?", found[deleted])
    with pytest.raises(
        CheckpointIntegrityError, match=f"checkpoint #{deleted + 1}\\b.* was deleted"
    ) as e:
        audit(server)
    assert e.value.size == found[deleted + 1]


def test_a_rollback_passes_a_fresh_audit_but_not_the_trust_state(
    server: ServerHandle, history: History, tmp_path: Path
) -> None:
    # The limit of any audit of one database: an attacker who restores an older, consistent
    # state (here: the newest checkpoint dropped and the head made to agree) leaves nothing to
    # see. A root kept from an earlier audit (the CLI's trust state) or a witness's cosigned
    # checkpoint catches it.
    _, second, newest = grown(server, history, tmp_path)
    kept = server.broker.store.latest_checkpoint()
    assert kept is not None
    assert kept.size == newest
    before = sql(server.broker, "SELECT note FROM ledger_checkpoints WHERE size = ?", second)
    note = str(before[0][0])
    body_hash = hashlib.sha256((note.rpartition("\n\n")[0] + "\n").encode()).digest()
    sql(server.broker, "DELETE FROM ledger_checkpoints WHERE size = ?", newest)
    sql(server.broker, "UPDATE ledger_head SET checkpoints = 2, checkpoint_hash = ?", body_hash)
    report = audit(server)
    assert report.newest_checkpoint is not None
    assert report.newest_checkpoint.size == second
    with pytest.raises(CheckpointIntegrityError, match="verified before is not stored") as e:
        audit_store(
            server.broker.store,
            server.broker.signer.verifier(),
            known_roots={kept.size: kept.root_hash},
        )
    assert e.value.size == newest
