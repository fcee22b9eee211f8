"""Checkpoints: the derived Go-key vector byte for byte, orbitq's origin rule, strict bodies."""

from __future__ import annotations

import pytest

from orbitq.ledger import (
    EMPTY_ROOT,
    Checkpoint,
    CheckpointFormatError,
    HashSizeError,
    KeyFormatError,
    LedgerIntegrityError,
    NoteFormatError,
    NoteSignatureError,
    OriginMismatchError,
    Signer,
    UnknownKeyError,
    format_checkpoint_body,
    parse_checkpoint_body,
    parse_signer_key,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
)
from tests.ledger.ledger_vectors import go_note, rfc_root

DERIVED = go_note()["derived_checkpoint_example"]
ORIGIN = "orbitq.test/ledger"
ROOT8 = rfc_root(8)
ROOT8_B64 = "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="


@pytest.fixture(scope="module")
def log_key() -> Signer:
    return Signer.generate(ORIGIN)


def test_derived_checkpoint_is_reproduced_byte_for_byte() -> None:
    signer = parse_signer_key(go_note()["skey"])
    assert format_checkpoint_body(DERIVED["origin"], 8, ROOT8) == DERIVED["checkpoint_text"]
    assert sign_checkpoint(DERIVED["origin"], 8, ROOT8, signer) == DERIVED["signed_note"]
    assert signer.key_id.hex() == DERIVED["key_id_hex"]
    parsed = parse_checkpoint_body(DERIVED["checkpoint_text"])
    assert parsed == Checkpoint(DERIVED["origin"], 8, ROOT8, (), "")


def test_derived_checkpoint_fails_orbitqs_origin_rule() -> None:
    # Signed correctly, but by a key named PeterNeumann for the origin example.com/...: refused.
    with pytest.raises(OriginMismatchError, match="PeterNeumann"):
        verify_checkpoint(DERIVED["signed_note"], DERIVED["vkey"])


def test_sign_and_verify(log_key: Signer) -> None:
    note = sign_checkpoint(ORIGIN, 8, ROOT8, log_key)
    assert note.startswith(f"{ORIGIN}\n8\n{ROOT8_B64}\n\n\u2014 {ORIGIN} ")
    checkpoint = verify_checkpoint(note, log_key.verifier_key())
    assert checkpoint == Checkpoint(ORIGIN, 8, ROOT8, (), note)
    assert verify_checkpoint(note.encode("utf-8"), log_key.verifier()) == checkpoint


def test_empty_log_and_extensions_round_trip(log_key: Signer) -> None:
    note = sign_checkpoint(ORIGIN, 0, EMPTY_ROOT, log_key, extensions=("ext one", "— two"))
    checkpoint = verify_checkpoint(note, log_key.verifier_key())
    assert (checkpoint.size, checkpoint.root_hash) == (0, EMPTY_ROOT)
    assert checkpoint.extensions == ("ext one", "— two")


def test_largest_size_round_trips(log_key: Signer) -> None:
    note = sign_checkpoint(ORIGIN, 2**64 - 1, ROOT8, log_key)
    assert verify_checkpoint(note, log_key.verifier_key()).size == 2**64 - 1


def test_a_checkpoint_signed_by_another_key_is_rejected(log_key: Signer) -> None:
    other = Signer.generate("other.test/ledger")
    with pytest.raises(UnknownKeyError):
        verify_checkpoint(sign_checkpoint(ORIGIN, 8, ROOT8, other), log_key.verifier_key())
    # Another key under the log's own name: a different key id, so still not the log's key.
    impostor = Signer.generate(ORIGIN)
    with pytest.raises(UnknownKeyError):
        verify_checkpoint(sign_checkpoint(ORIGIN, 8, ROOT8, impostor), log_key.verifier_key())


def test_a_checkpoint_of_another_origin_is_rejected(log_key: Signer) -> None:
    note = sign_checkpoint("orbitq.test/another-ledger", 8, ROOT8, log_key)
    with pytest.raises(OriginMismatchError, match="another-ledger"):
        verify_checkpoint(note, log_key.verifier_key())


def test_an_altered_checkpoint_is_rejected(log_key: Signer) -> None:
    note = sign_checkpoint(ORIGIN, 8, ROOT8, log_key)
    with pytest.raises(NoteSignatureError):
        verify_checkpoint(note.replace("\n8\n", "\n9\n"), log_key.verifier_key())


def test_a_bad_verifier_key_is_rejected(log_key: Signer) -> None:
    note = sign_checkpoint(ORIGIN, 8, ROOT8, log_key)
    with pytest.raises(KeyFormatError):
        verify_checkpoint(note, "not a key")


def test_malformed_notes_are_rejected(log_key: Signer) -> None:
    with pytest.raises(NoteFormatError):
        verify_checkpoint(f"{ORIGIN}\n8\n{ROOT8_B64}\n", log_key.verifier_key())


BAD_BODIES = [
    (f"{ORIGIN}\n8\n{ROOT8_B64}", "end with a newline"),
    (f"{ORIGIN}\n8\n", "needs origin"),
    (f"{ORIGIN}\n", "needs origin"),
    (f"\n8\n{ROOT8_B64}\n", "line 1 is empty"),
    (f"{ORIGIN}\n\n{ROOT8_B64}\n", "line 2 is empty"),
    (f"{ORIGIN}\n8\n{ROOT8_B64}\n\n", "line 4 is empty"),
    (f"{ORIGIN}\n8\n{ROOT8_B64}\next\n\n", "line 5 is empty"),
    (f"{ORIGIN}\n08\n{ROOT8_B64}\n", "leading zeros"),
    (f"{ORIGIN}\n00\n{ROOT8_B64}\n", "leading zeros"),
    (f"{ORIGIN}\n+8\n{ROOT8_B64}\n", "leading zeros"),
    (f"{ORIGIN}\n-1\n{ROOT8_B64}\n", "leading zeros"),
    (f"{ORIGIN}\n 8\n{ROOT8_B64}\n", "leading zeros"),
    (f"{ORIGIN}\n8 \n{ROOT8_B64}\n", "leading zeros"),
    (f"{ORIGIN}\n8_0\n{ROOT8_B64}\n", "leading zeros"),
    (f"{ORIGIN}\n\u0668\n{ROOT8_B64}\n", "leading zeros"),  # ARABIC-INDIC DIGIT EIGHT
    (f"{ORIGIN}\n{2**64}\n{ROOT8_B64}\n", "2\\^64"),
    (f"{ORIGIN}\n{'9' * 30}\n{ROOT8_B64}\n", "2\\^64"),
    (f"{ORIGIN}\n8\n{ROOT8_B64[:-1]}\n", "base64"),
    (f"{ORIGIN}\n8\n{ROOT8_B64[:-2]}x=\n", "canonical"),
    (f"{ORIGIN}\n8\n{ROOT8_B64} \n", "base64"),
    (f"{ORIGIN}\n8\n{ROOT8.hex()}\n", "bytes"),
    (f"{ORIGIN}\n8\nAAAA\n", "3 bytes"),
    (f"{ORIGIN}\n8\n{'A' * 44}\n", "33 bytes"),
    (f"{ORIGIN}\n8\n{'A' * 42}==\n", "31 bytes"),
    (f"{ORIGIN}\r\n8\n{ROOT8_B64}\n", "control character"),
]


@pytest.mark.parametrize(("body", "match"), BAD_BODIES)
def test_malformed_bodies_are_rejected(body: str, match: str, log_key: Signer) -> None:
    with pytest.raises(CheckpointFormatError, match=match):
        parse_checkpoint_body(body)
    if body.endswith("\n") and "\r" not in body:
        # Signed correctly, still refused: the signature does not make a bad body good.
        with pytest.raises(CheckpointFormatError):
            verify_checkpoint(sign_note(body, [log_key]), log_key.verifier_key())


def test_a_root_of_zero_bytes_is_still_a_root() -> None:
    assert parse_checkpoint_body(f"{ORIGIN}\n8\n{'A' * 43}=\n").root_hash == bytes(32)


def test_the_writer_refuses_what_the_reader_would() -> None:
    with pytest.raises(CheckpointFormatError, match="origin"):
        format_checkpoint_body("", 8, ROOT8)
    with pytest.raises(CheckpointFormatError, match="origin"):
        format_checkpoint_body("has space", 8, ROOT8)
    with pytest.raises(CheckpointFormatError, match="origin"):
        format_checkpoint_body("a\nb", 8, ROOT8)
    with pytest.raises(CheckpointFormatError, match="2\\^64"):
        format_checkpoint_body(ORIGIN, -1, ROOT8)
    with pytest.raises(CheckpointFormatError, match="2\\^64"):
        format_checkpoint_body(ORIGIN, 2**64, ROOT8)
    with pytest.raises(HashSizeError):
        format_checkpoint_body(ORIGIN, 8, ROOT8[:31])
    with pytest.raises(CheckpointFormatError, match="non-empty"):
        format_checkpoint_body(ORIGIN, 8, ROOT8, ["ok", ""])
    with pytest.raises(CheckpointFormatError, match="control"):
        format_checkpoint_body(ORIGIN, 8, ROOT8, ["two\nlines"])


def test_every_checkpoint_failure_is_a_ledger_integrity_error() -> None:
    for error in (CheckpointFormatError, OriginMismatchError):
        assert issubclass(error, LedgerIntegrityError)
