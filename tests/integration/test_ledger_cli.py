"""`orbitq ledger ...` through `main([...])`: against a real server, and offline on the broker's
data directory and database (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from orbitq.clients.cli.main import main
from orbitq.ledger import Signer, leaf_hash, verify_checkpoint, verify_inclusion
from orbitq.ledger.entries import decode_entry
from orbitq.ledger.model import id_to_bytes
from orbitq.services.clock import SimulatedClock
from tests.conftest import BrokerHandle, ServerHandle
from tests.ledger_history import History, build_history, entry_rows, flip_byte, transfer_entries


@pytest.fixture
def trust_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "trust"
    monkeypatch.setenv("ORBITQ_TRUST_DIR", str(directory))
    return directory


@pytest.fixture
def history(server: ServerHandle, clock: SimulatedClock, trust_dir: Path) -> History:
    return build_history(server, clock, trust_dir)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def online(server: ServerHandle, key: str) -> list[str]:
    return ["--target", server.target, "--api-key", key]


def test_checkpoint_json_and_table(
    server: ServerHandle, history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "ledger", "checkpoint", "--json", *online(server, history.acme_key))
    assert code == 0
    document = json.loads(out)
    checkpoint = verify_checkpoint(document["note"], server.broker.signer.verifier_key())
    assert document["size"] == checkpoint.size == history.checkpoint.size
    assert base64.b64decode(document["root"]) == checkpoint.root_hash
    assert document["key_source"] == "tofu"
    code, out, _ = run(capsys, "ledger", "checkpoint", *online(server, history.acme_key))
    assert code == 0
    assert f"checkpoint of orbitq.test/ledger: {history.checkpoint.size} entries" in out
    assert "pinned on first use (weaker than a key pinned with --vkey)" in out
    assert "the same checkpoint was verified before" in out
    assert out.rstrip().endswith(history.checkpoint.note.rstrip())


def test_vkey_online_and_offline(
    broker: BrokerHandle,
    server: ServerHandle,
    history: History,
    capsys: pytest.CaptureFixture[str],
) -> None:
    expected = server.broker.signer.verifier_key()
    code, out, err = run(capsys, "ledger", "vkey", *online(server, history.acme_key))
    assert (code, out.strip()) == (0, expected)
    assert "compare it with the key its operator publishes" in err
    code, out, _ = run(capsys, "ledger", "vkey", "--data-dir", str(broker.data_dir))
    assert (code, out.strip()) == (0, expected)


def test_entries_json_and_table(
    server: ServerHandle, history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "ledger",
        "entries",
        "--start",
        "8",
        "--end",
        "14",
        "--json",
        *online(server, history.acme_key),
    )
    assert code == 0
    entries = json.loads(out)["entries"]
    assert [e["index"] for e in entries] == list(range(8, 14))
    assert [base64.b64decode(e["data"]) for e in entries] == [
        data for index, data, _ in entry_rows(server.broker) if 8 <= index < 14
    ]
    code, out, _ = run(capsys, "ledger", "entries", *online(server, history.acme_key))
    assert code == 0
    assert "account #1: system:treasury cpu" in out
    assert "acme cpu, may not overdraw" in out
    assert "settle 250 cpu" in out
    assert "exceeds_credits" in out
    assert "[pending]" in out
    code, _, err = run(
        capsys, "ledger", "entries", "--start", "9", "--end", "3", *online(server, "x")
    )
    assert code == 1
    assert "--start 9 is after --end 3" in err


def test_prove_by_index_and_by_transfer(
    server: ServerHandle, history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "ledger", "prove", "5", "--json", *online(server, history.acme_key))
    assert code == 0
    proof = json.loads(out)
    assert proof["verified"] is True
    entry = base64.b64decode(proof["entry"])
    verify_inclusion(
        leaf_hash(entry),
        5,
        proof["tree_size"],
        [base64.b64decode(h) for h in proof["hashes"]],
        base64.b64decode(proof["root"]),
    )
    post = f"{history.transfers['post']:032x}"
    code, out, _ = run(
        capsys, "ledger", "prove", "--transfer", post, *online(server, history.acme_key)
    )
    assert code == 0
    assert "inclusion proof verified here" in out
    assert f"id {post}" in out
    code, _, err = run(capsys, "ledger", "prove", *online(server, history.acme_key))
    assert code == 1
    assert "either an entry INDEX or --transfer ID" in err
    code, _, err = run(
        capsys, "ledger", "prove", "--transfer", "e" * 32, *online(server, history.acme_key)
    )
    assert code == 3
    assert "no transfer with id" in err
    assert "[NOT_FOUND]" in err


def test_offline_verify_clean_then_tampered(
    broker: BrokerHandle,
    server: ServerHandle,
    history: History,
    trust_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = str(broker.data_dir)
    code, out, err = run(capsys, "ledger", "verify", "--data-dir", data_dir, "--progress")
    assert code == 0, out
    assert "verifying [" in err  # the progress bar, forced
    size = history.checkpoint.size
    assert f"ledger of orbitq.test/ledger verified: {size} entries" in out
    code, out, _ = run(capsys, "ledger", "verify", "--data-dir", data_dir, "--json")
    report = json.loads(out)
    assert (report["ok"], report["entries"], report["checkpoint"]) == (True, size, size)
    assert report["consistent_with"] == size  # the first run recorded what it verified
    # The database URL and a pinned key work as well (e.g. on a copy of the database).
    vkey = server.broker.signer.verifier_key()
    code, out, _ = run(
        capsys, "ledger", "verify", "--db", server.broker.config.db_url, "--vkey", vkey
    )
    assert code == 0, out
    code, _, err = run(capsys, "ledger", "verify", "--db", server.broker.config.db_url)
    assert code == 1
    assert "give --vkey" in err
    target = transfer_entries(server.broker)[3]
    flip_byte(server.broker, target, 12)
    code, out, err = run(capsys, "ledger", "verify", "--data-dir", data_dir)
    assert code == 4
    assert f"ledger verification FAILED: entry {target}: leaf hash differs" in err


def test_online_verify_clean_then_tampered(
    server: ServerHandle, history: History, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "ledger", "verify", *online(server, history.acme_key))
    assert code == 0, out
    assert "verified as a client" in out
    assert "weaker than a key pinned with --vkey" in out
    vkey = server.broker.signer.verifier_key()
    pinned = ["--vkey", vkey, "--trust-dir", str(tmp_path / "pinned")]
    code, out, _ = run(capsys, "ledger", "verify", *pinned, *online(server, history.acme_key))
    assert code == 0, out
    assert "signed by the pinned key" in out
    target = transfer_entries(server.broker)[5]
    data = entry_rows(server.broker)[target][1]
    transfer = decode_entry(data).transfer
    assert transfer is not None
    flip_byte(server.broker, target, data.index(id_to_bytes(transfer.id)) + 3)
    code, _, err = run(capsys, "ledger", "verify", *online(server, history.acme_key))
    assert code == 4
    assert f"ledger verification FAILED: entry {target}: " in err


def test_offline_verify_of_a_database_that_is_not_a_ledger(
    tmp_path: Path, trust_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE unrelated (a)").connection.close()
    vkey = Signer.generate("orbitq.test/ledger").verifier_key()
    code, _, err = run(capsys, "ledger", "verify", "--db", f"sqlite:///{other}", "--vkey", vkey)
    assert code == 1
    assert "cannot read the ledger from the database: no such table" in err
    code, _, err = run(capsys, "ledger", "verify", "--db", f"sqlite:///{other}", "--vkey", "x")
    assert code == 1
    assert "--vkey:" in err
