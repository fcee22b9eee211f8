"""Client-side verification of the signed ledger: the SDK against a real broker, honest and
not. A broker that rewrites history, changes its key or serves altered entries is caught."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import threading
from pathlib import Path

import pytest

from orbitq.clients import (
    AsyncBrokerClient,
    BrokerClient,
    BrokerKeyChangedError,
    CheckpointSignatureError,
    ConfigurationError,
    EntryVerificationError,
    FailedPreconditionError,
    HistoryRewrittenError,
    format_id,
    new_id,
)
from orbitq.ledger import Signer, leaf_hash, sign_checkpoint
from orbitq.ledger.entries import decode_entry
from orbitq.ledger.model import id_to_bytes
from orbitq.ledger.store import LedgerStore
from orbitq.services.clock import SimulatedClock
from tests.conftest import ServerHandle
from tests.ledger_history import (
    ORIGIN,
    History,
    another_broker,
    build_history,
    entry_rows,
    flip_byte,
    rewrite_entries,
    sql,
    transfer_entries,
)


@pytest.fixture
def trust_dir(tmp_path: Path) -> Path:
    return tmp_path / "trust"


@pytest.fixture
def history(server: ServerHandle, clock: SimulatedClock, trust_dir: Path) -> History:
    return build_history(server, clock, trust_dir)


def tenant(server: ServerHandle, history: History, trust_dir: Path, **kw: object) -> BrokerClient:
    return BrokerClient(server.target, history.acme_key, trust_dir=trust_dir, **kw)  # type: ignore[arg-type]


def grow(server: ServerHandle, history: History) -> None:
    """Append a transfer and sign a checkpoint over it."""
    with BrokerClient(server.target, history.acme_key) as acme:
        acme.transfer("globex", cpu=1)
    server.broker.sign_checkpoint()


def test_trust_on_first_use_then_consistency(
    server: ServerHandle,
    history: History,
    trust_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.WARNING, "orbitq.clients.ledger"),
        tenant(server, history, trust_dir) as client,
    ):
        first = client.checkpoint()
        assert first.key_source == "tofu"
        assert first.previous_size == 0
        assert first.verifier_key == server.broker.signer.verifier_key()
        assert (first.size, first.root_hash) == (
            history.checkpoint.size,
            history.checkpoint.root_hash,
        )
        assert "on first use (TOFU)" in caplog.text
        grow(server, history)
        second = client.checkpoint()
        assert second.previous_size == first.size < second.size
    (state_file,) = trust_dir.iterdir()
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    state = json.loads(state_file.read_text())
    assert (state["origin"], state["size"], state["key_source"]) == (ORIGIN, second.size, "tofu")
    # A new client (another process) continues from the state file.
    with tenant(server, history, trust_dir) as again:
        grow(server, history)
        third = again.checkpoint()
        assert third.previous_size == second.size


def test_a_pinned_key(server: ServerHandle, history: History, trust_dir: Path) -> None:
    vkey = server.broker.signer.verifier_key()
    with tenant(server, history, trust_dir, ledger_key=vkey) as client:
        checkpoint = client.checkpoint()
        assert checkpoint.key_source == "pinned"
        assert client.public_key().verifier_key == vkey
    other = Signer.generate(ORIGIN).verifier_key()
    with (
        tenant(server, history, trust_dir, ledger_key=other) as client,
        pytest.raises(ConfigurationError, match="delete that file"),
    ):
        client.checkpoint()  # the state file was verified with the broker's real key
    with (
        tenant(server, history, trust_dir / "fresh", ledger_key=other) as client,
        pytest.raises(BrokerKeyChangedError, match="now presents the signing key"),
    ):
        client.checkpoint()
    with pytest.raises(ConfigurationError, match="not a verifier key"):
        BrokerClient(server.target, history.acme_key, ledger_key="nonsense")


def test_prove_transfer_and_entry(server: ServerHandle, history: History, trust_dir: Path) -> None:
    post = history.transfers["post"]
    with tenant(server, history, trust_dir) as client:
        proof = client.prove_transfer(post)
        assert proof.entry.transfer is not None
        assert proof.entry.transfer.id == format_id(post)
        assert proof.entry.transfer.amount == 250
        assert proof.entry.result == "ok"
        assert proof.checkpoint.size == history.checkpoint.size
        assert proof.leaf_hash == leaf_hash(proof.entry.data)
        entry = client.prove_entry(0)
        assert entry.index == 0
        assert entry.entry.type == "account_created"
        assert entry.entry.account is not None
        # A transfer committed after the checkpoint: the proof waits for the next one.
        with BrokerClient(server.target, history.acme_key) as acme:
            (outcome,) = acme.transfer("globex", cpu=2)
        assert outcome.transfer is not None
        with pytest.raises(FailedPreconditionError, match="not covered"):
            client.prove_transfer(outcome.transfer.id, wait_seconds=0)
        signer = threading.Timer(0.3, server.broker.sign_checkpoint)
        signer.start()
        fresh = client.prove_transfer(outcome.transfer.id, wait_seconds=5)
        signer.join()
        assert fresh.checkpoint.size > history.checkpoint.size
        assert fresh.checkpoint.previous_size == history.checkpoint.size


def test_entries_and_verify_log(server: ServerHandle, history: History, trust_dir: Path) -> None:
    with tenant(server, history, trust_dir) as client:
        entries = client.entries(0, 5)
        assert [entry.index for entry in entries] == [0, 1, 2, 3, 4]
        everything = client.entries()
        assert len(everything) == history.checkpoint.size
        kinds = {entry.type for entry in everything}
        assert kinds == {"account_created", "transfer_recorded"}
        results = {entry.result for entry in everything if entry.transfer is not None}
        assert results == {"ok", "exceeds_credits"}
        seen: list[tuple[int, int]] = []
        verified = client.verify_log(progress=lambda done, total: seen.append((done, total)))
        assert verified.entries == history.checkpoint.size
        assert seen[-1] == (verified.entries, verified.entries)


def test_async_client_shares_the_verification(
    server: ServerHandle, history: History, trust_dir: Path
) -> None:
    async def scenario() -> None:
        async with AsyncBrokerClient(
            server.target, history.acme_key, trust_dir=trust_dir
        ) as client:
            checkpoint = await client.checkpoint()
            assert checkpoint.size == history.checkpoint.size
            proof = await client.prove_transfer(history.transfers["void"])
            assert proof.entry.transfer is not None
            assert "void_pending" in proof.entry.transfer.flags
            assert (await client.prove_entry(3)).index == 3
            assert len(await client.entries(0, 3)) == 3
            assert (await client.verify_log()).entries == history.checkpoint.size
            assert (await client.public_key()).origin == ORIGIN

    asyncio.run(scenario())
    grow(server, history)

    async def tampered() -> None:
        async with AsyncBrokerClient(
            server.target, history.acme_key, trust_dir=trust_dir
        ) as client:
            with pytest.raises(HistoryRewrittenError, match="smaller than the verified"):
                await client.checkpoint()

    sql(server.broker, "DELETE FROM ledger_checkpoints WHERE size = ?", history.checkpoint.size)
    with tenant(server, history, trust_dir) as client:
        client.checkpoint()  # trusts the grown checkpoint
    newest = server.broker.store.latest_checkpoint()
    assert newest is not None
    sql(server.broker, "DELETE FROM ledger_checkpoints WHERE size = ?", newest.size)
    asyncio.run(tampered())


# -- a broker that misbehaves ---------------------------------------------------------------------


def test_a_bad_signature_is_caught(server: ServerHandle, history: History, trust_dir: Path) -> None:
    with tenant(server, history, trust_dir) as client:
        client.checkpoint()
    body = history.checkpoint.note.rpartition("\n\n")[0]
    forged = sign_checkpoint(
        ORIGIN, history.checkpoint.size, history.checkpoint.root_hash, server.broker.signer
    ).rpartition("\n\n")[2]
    # Same key id, another signature: flip a bit inside the signature's base64.
    line = forged.rstrip("\n")
    broken = line[:-10] + ("A" if line[-10] != "A" else "B") + line[-9:]
    sql(
        server.broker,
        "UPDATE ledger_checkpoints SET note = ? WHERE size = ?",
        f"{body}\n\n{broken}\n",
        history.checkpoint.size,
    )
    with (
        tenant(server, history, trust_dir) as client,
        pytest.raises(CheckpointSignatureError, match="does not verify with its key") as caught,
    ):
        client.checkpoint()
    assert caught.value.origin == ORIGIN


def test_a_checkpoint_from_a_different_key_is_caught(
    server: ServerHandle, history: History, trust_dir: Path, tmp_path: Path, clock: SimulatedClock
) -> None:
    with tenant(server, history, trust_dir) as client:
        client.checkpoint()
    with (
        another_broker(tmp_path, clock) as impostor,
        BrokerClient(impostor.target, impostor.operator_key, trust_dir=trust_dir) as client,
        pytest.raises(BrokerKeyChangedError, match=f"broker {ORIGIN} now presents") as caught,
    ):
        client.checkpoint()
    assert server.broker.signer.verifier_key() in str(caught.value)


def test_a_rewritten_and_resigned_history_is_a_fork(
    server: ServerHandle, history: History, trust_dir: Path
) -> None:
    with tenant(server, history, trust_dir) as client:
        client.checkpoint()
    broker = server.broker
    target = transfer_entries(broker)[0]
    data = entry_rows(broker)[target][1]
    rewrite_entries(broker, {target: data.replace(b"\x20\xe8\x07", b"\x20\xe9\x07")})
    sql(broker, "DELETE FROM ledger_checkpoints")
    forged = LedgerStore(broker.engine).sign_checkpoint(broker.signer, ORIGIN, broker.now_ns())
    assert forged.size == history.checkpoint.size
    assert forged.root_hash != history.checkpoint.root_hash
    with (
        tenant(server, history, trust_dir) as client,
        pytest.raises(HistoryRewrittenError, match="the log forked"),
    ):
        client.checkpoint()


def test_a_diverging_broker_with_the_same_key_is_caught(
    server: ServerHandle, history: History, trust_dir: Path, tmp_path: Path, clock: SimulatedClock
) -> None:
    with tenant(server, history, trust_dir) as client:
        client.checkpoint()
    key_file = server.broker.config.key_path
    with another_broker(tmp_path, clock, key_file=key_file) as twin:
        with BrokerClient(twin.target, twin.operator_key, trust_dir=trust_dir) as admin:
            # The twin's log is longer, but it is another history.
            for number in range(8):
                admin.create_tenant(f"tenant-{number}")
            admin.mint("tenant-0", cpu=5, id=new_id())
        twin.broker.sign_checkpoint()
        assert twin.broker.store.head().size > history.checkpoint.size
        with (
            BrokerClient(twin.target, twin.operator_key, trust_dir=trust_dir) as client,
            pytest.raises(HistoryRewrittenError) as caught,
        ):
            client.checkpoint()
    message = str(caught.value)
    assert f"is not an extension of the verified checkpoint {history.checkpoint.size}" in message
    assert "history was rewritten" in message


def test_verify_log_names_an_altered_entry(
    server: ServerHandle, history: History, trust_dir: Path
) -> None:
    target = transfer_entries(server.broker)[6]
    data = entry_rows(server.broker)[target][1]
    transfer = decode_entry(data).transfer
    assert transfer is not None
    # A byte inside the transfer id: the entry still decodes, only the hashes tell.
    flip_byte(server.broker, target, data.index(id_to_bytes(transfer.id)) + 5)
    with (
        tenant(server, history, trust_dir) as client,
        pytest.raises(EntryVerificationError, match=f"entry {target} is the first") as caught,
    ):
        client.verify_log()
    assert caught.value.index == target


def test_a_corrupt_state_file_is_a_configuration_error(
    server: ServerHandle, history: History, trust_dir: Path
) -> None:
    with tenant(server, history, trust_dir) as client:
        client.checkpoint()
    (state_file,) = trust_dir.iterdir()
    state_file.write_text("{not json")
    with (
        tenant(server, history, trust_dir) as client,
        pytest.raises(ConfigurationError, match="is unreadable"),
    ):
        client.checkpoint()
