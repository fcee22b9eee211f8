"""Signed notes: the C2SP example, Go's sumdb/note test keys byte for byte, and every rejection."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orbitq.ledger import (
    NOTE_BYTES_MAX,
    NOTE_SIGNATURES_MAX,
    KeyFormatError,
    LedgerIntegrityError,
    NoteFormatError,
    NoteSignatureError,
    Signer,
    UnknownKeyError,
    Verifier,
    key_id,
    open_note,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)
from tests.ledger.ledger_vectors import c2sp_note, go_note

EM_DASH = "\u2014"
GO = go_note()
C2SP = c2sp_note()
TEXT: str = GO["text"]
PETER_LINE: str = GO["expected_signature_line"]
ENOCH_LINE: str = GO["enoch_signature_line"]
VKEY: str = GO["vkey"]
SKEY: str = GO["skey"]


def _peter() -> Signer:
    return parse_signer_key(SKEY)


def _peter_note() -> str:
    return TEXT + "\n" + PETER_LINE


def _doubly_signed() -> str:
    return _peter_note() + ENOCH_LINE


def _corrupt_signature(line: str) -> str:
    """The same line with the signature's last base64 character changed (still canonical)."""
    encoded = line.rstrip("\n").rsplit(" ", 1)[1]
    body, padding = encoded.rstrip("="), encoded[len(encoded.rstrip("=")) :]
    # With one '=' the last character carries 2 unused bits; step by 4 to keep them zero.
    last = "A" if body[-1] != "A" else "E"
    return line.replace(encoded, body[:-1] + last + padding)


# --- The C2SP example --------------------------------------------------------------------------


def test_c2sp_example_verifies_with_its_key() -> None:
    verifier = parse_verifier_key(C2SP["vkey"])
    assert verifier.name == C2SP["key_name"]
    assert verifier.key_id.hex() == C2SP["key_id_hex"]
    assert verifier.public_key_raw.hex() == C2SP["ed25519_public_key_hex"]
    assert key_id(C2SP["key_name"], verifier.public_key_raw).hex() == C2SP["key_id_hex"]
    assert verifier.verifier_key() == C2SP["vkey"]
    opened = open_note(C2SP["note_utf8"], [verifier])
    assert opened.text == C2SP["signed_text_utf8"]
    assert opened.verified == (verifier,)
    (signature,) = parse_note(C2SP["note_utf8"]).signatures
    assert signature.name == C2SP["key_name"]
    assert signature.key_id.hex() == C2SP["key_id_hex"]
    assert signature.signature.hex() == C2SP["signature_hex"]


def test_notes_may_be_given_as_utf8_bytes() -> None:
    verifier = parse_verifier_key(C2SP["vkey"])
    opened = open_note(C2SP["note_utf8"].encode("utf-8"), [verifier])
    assert opened.text == C2SP["signed_text_utf8"]


# --- Go's sumdb/note test keys -----------------------------------------------------------------


def test_go_signer_key_parses_and_round_trips() -> None:
    signer = _peter()
    assert signer.name == "PeterNeumann"
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.verifier_key() == VKEY
    assert signer.signer_key() == SKEY
    assert signer.verifier().public_key_raw.hex() == GO["ed25519_public_key_hex"]
    seed = bytes.fromhex(GO["ed25519_seed_hex"])
    same = Signer.from_private_key("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))
    assert same.signer_key() == SKEY


def test_go_signature_line_is_reproduced_byte_for_byte() -> None:
    note = sign_note(TEXT, [_peter()])
    assert note == TEXT + "\n" + PETER_LINE
    assert note.encode("utf-8").endswith(PETER_LINE.encode("utf-8"))
    (signature,) = parse_note(note).signatures
    assert signature.signature.hex() == GO["signature_hex"]


def test_go_note_verifies_with_its_vkey() -> None:
    verifier = parse_verifier_key(VKEY)
    opened = open_note(_peter_note(), [verifier])
    assert opened.text == TEXT
    assert opened.verified == (verifier,)


def test_enoch_root_line_is_ignored_unless_its_key_is_known() -> None:
    peter = parse_verifier_key(VKEY)
    enoch = parse_verifier_key(GO["enoch_vkey"])
    assert [s.name for s in parse_note(_doubly_signed()).signatures] == [
        "PeterNeumann",
        "EnochRoot",
    ]
    assert open_note(_doubly_signed(), [peter]).verified == (peter,)
    assert open_note(_doubly_signed(), [enoch]).verified == (enoch,)
    assert open_note(_doubly_signed(), [enoch, peter]).verified == (peter, enoch)
    # An unknown key's line is not even checked: a corrupted one is ignored...
    corrupted = _peter_note() + _corrupt_signature(ENOCH_LINE)
    assert open_note(corrupted, [peter]).verified == (peter,)
    # ...but once the key is known, its bad signature rejects the whole note.
    with pytest.raises(NoteSignatureError, match="EnochRoot\\+af0cfe78"):
        open_note(corrupted, [peter, enoch])


def test_generated_keys_sign_and_open_text_with_blank_lines() -> None:
    signer = Signer.generate("orbitq.test/log")
    text = "first\n\n\u2014 looks like a signature line c2ln\n\nlast\n"
    note = sign_note(text, [signer])
    assert open_note(note, [parse_verifier_key(signer.verifier_key())]).text == text
    assert "PRIVATE" not in repr(signer)
    assert repr(signer) == f"Signer(orbitq.test/log+{signer.key_id.hex()})"


def test_several_signers_sign_in_order() -> None:
    one, two = Signer.generate("one.example"), Signer.generate("two.example")
    note = sign_note("text\n", [one, two])
    assert [s.name for s in parse_note(note).signatures] == ["one.example", "two.example"]
    assert open_note(note, [two.verifier(), one.verifier()]).verified == (
        one.verifier(),
        two.verifier(),
    )


# --- Opening: every rejection ------------------------------------------------------------------


def test_a_known_keys_bad_signature_rejects_the_note() -> None:
    peter = parse_verifier_key(VKEY)
    enoch = parse_verifier_key(GO["enoch_vkey"])
    bad = TEXT + "\n" + _corrupt_signature(PETER_LINE)
    with pytest.raises(NoteSignatureError, match="does not verify"):
        open_note(bad, [peter])
    # Even when another known key's signature verifies.
    with pytest.raises(NoteSignatureError):
        open_note(bad + ENOCH_LINE, [peter, enoch])
    # Even when a valid signature by the same key is also present.
    with pytest.raises(NoteSignatureError):
        open_note(_peter_note() + _corrupt_signature(PETER_LINE), [peter])


def test_altered_text_is_rejected() -> None:
    peter = parse_verifier_key(VKEY)
    altered = _peter_note().replace("answer", "Answer")
    with pytest.raises(NoteSignatureError):
        open_note(altered, [peter])


def test_a_note_with_only_unknown_keys_is_rejected() -> None:
    stranger = Signer.generate("stranger.example").verifier()
    with pytest.raises(UnknownKeyError, match=r"stranger\.example") as caught:
        open_note(_doubly_signed(), [stranger])
    assert "PeterNeumann+c74f20a3" in str(caught.value)


def test_same_name_or_same_id_alone_is_an_unknown_key() -> None:
    # Same name, another key (so another key id): ignored, not a failed signature.
    impostor = Signer.generate("PeterNeumann")
    note = sign_note(TEXT, [impostor])
    with pytest.raises(UnknownKeyError):
        open_note(note, [parse_verifier_key(VKEY)])
    # Same key id under another name: ignored too.
    renamed = PETER_LINE.replace("PeterNeumann", "PaulNeumann")
    with pytest.raises(UnknownKeyError):
        open_note(TEXT + "\n" + renamed, [parse_verifier_key(VKEY)])


def test_a_known_key_with_a_short_signature_fails_verification() -> None:
    peter = _peter()
    encoded = base64.b64encode(peter.key_id + bytes(10)).decode()
    line = f"{EM_DASH} PeterNeumann {encoded}\n"
    with pytest.raises(NoteSignatureError, match="64"):
        open_note(TEXT + "\n" + line, [peter.verifier()])


@pytest.mark.parametrize(
    ("note", "match"),
    [
        ("text\n", "no blank line"),
        ("text\n\n", "signature line"),
        (f"text\n\n{EM_DASH} a YWFhYWE=", "newline"),
        ("text\n\n- a YWFhYWE=\n", "em dash"),
        (f"text\n\n{EM_DASH}a YWFhYWE=\n", "em dash"),
        (f"text\n\n{EM_DASH} YWFhYWE=\n", "key name"),
        (f"text\n\n{EM_DASH} a+b YWFhYWE=\n", "key name"),
        (f"text\n\n{EM_DASH} a YWFhYWE\n", "base64"),
        (f"text\n\n{EM_DASH} a YWFhYWF=\n", "canonical"),
        (f"text\n\n{EM_DASH} a YWFh YWE=\n", "base64"),
        (f"text\n\n{EM_DASH} a YWFhYQ==\n", "too short"),
        (f"te\rxt\n\n{EM_DASH} a YWFhYWE=\n", "control character"),
        (f"te\txt\n\n{EM_DASH} a YWFhYWE=\n", "control character"),
        (f"text\n\n{EM_DASH} a YWFhYWE=\n\n", "signature line"),
    ],
)
def test_malformed_notes_are_rejected(note: str, match: str) -> None:
    with pytest.raises(NoteFormatError, match=match):
        parse_note(note)
    with pytest.raises(NoteFormatError):
        open_note(note, [parse_verifier_key(VKEY)])


def test_invalid_utf8_is_rejected() -> None:
    with pytest.raises(NoteFormatError, match="UTF-8"):
        parse_note(b"caf\xe9\n\n" + PETER_LINE.encode("utf-8"))
    with pytest.raises(NoteFormatError, match="UTF-8"):
        parse_note("\ud800\n\n" + PETER_LINE)


def test_limits() -> None:
    line = PETER_LINE
    at_limit = TEXT + "\n" + line * NOTE_SIGNATURES_MAX
    assert len(parse_note(at_limit).signatures) == NOTE_SIGNATURES_MAX
    assert open_note(at_limit, [parse_verifier_key(VKEY)]).text == TEXT
    with pytest.raises(NoteFormatError, match="signature lines"):
        parse_note(at_limit + line)
    huge = "x" * NOTE_BYTES_MAX + "\n\n" + line
    with pytest.raises(NoteFormatError, match="limit"):
        parse_note(huge)
    with pytest.raises(NoteFormatError, match="limit"):
        parse_note(huge.encode("utf-8"))
    with pytest.raises(NoteFormatError, match="limit"):
        sign_note("x" * NOTE_BYTES_MAX + "\n", [_peter()])


def test_open_note_needs_consistent_verifiers() -> None:
    with pytest.raises(ValueError, match="at least one"):
        open_note(_peter_note(), [])
    peter = parse_verifier_key(VKEY)
    assert open_note(_peter_note(), [peter, parse_verifier_key(VKEY)]).verified == (peter,)


# --- Signing: what it refuses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "newline"),
        ("no newline", "newline"),
        ("tab\there\n", "control character"),
        ("cr\r\n", "control character"),
        ("\ud800\n", "UTF-8"),
    ],
)
def test_sign_note_refuses_bad_text(text: str, match: str) -> None:
    with pytest.raises(NoteFormatError, match=match):
        sign_note(text, [_peter()])


def test_sign_note_refuses_no_or_duplicate_signers() -> None:
    with pytest.raises(ValueError, match="at least one"):
        sign_note("text\n", [])
    with pytest.raises(ValueError, match="share"):
        sign_note("text\n", [_peter(), _peter()])


# --- Keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vkey", "match"),
    [
        ("", "must look like"),
        ("PeterNeumann", "must look like"),
        ("PeterNeumann+c74f20a3", "must look like"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex"),
        ("PeterNeumann+c74f20ag+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n", "base64"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "base64"),
        ("PeterNeumann+c74f20a3+Alpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "0x02"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10Q=", "32 bytes"),
        ("PeterNeumann+c74f20a3+", "algorithm missing"),
    ],
)
def test_malformed_verifier_keys_are_rejected(vkey: str, match: str) -> None:
    with pytest.raises(KeyFormatError, match=match):
        parse_verifier_key(vkey)


def test_uppercase_hex_key_id_is_accepted() -> None:
    assert parse_verifier_key(VKEY.replace("c74f20a3", "C74F20A3")).key_id.hex() == ("c74f20a3")


def test_malformed_signer_keys_are_rejected_without_echoing_the_secret() -> None:
    secret = SKEY.rsplit("+", 1)[1]
    for skey, match in [
        (SKEY.removeprefix("PRIVATE+KEY+"), "PRIVATE\\+KEY"),
        (SKEY.replace("c74f20a3", "c74f20a4"), "does not match"),
        (SKEY.replace("PeterNeumann", "PaulNeumann"), "does not match"),
        (SKEY[:-1], "base64"),
    ]:
        with pytest.raises(KeyFormatError, match=match) as caught:
            parse_signer_key(skey)
        assert secret[:12] not in str(caught.value)


def test_verifier_rejects_bad_names_and_key_sizes() -> None:
    with pytest.raises(KeyFormatError, match="key name"):
        Verifier("has space", bytes(32))
    with pytest.raises(KeyFormatError, match="key name"):
        Verifier("", bytes(32))
    with pytest.raises(KeyFormatError, match="33 bytes"):
        Verifier("name", bytes(33))
    with pytest.raises(KeyFormatError, match="key name"):
        Signer.generate("a+b")


def test_every_note_failure_is_a_ledger_integrity_error() -> None:
    for error in (KeyFormatError, NoteFormatError, NoteSignatureError, UnknownKeyError):
        assert issubclass(error, LedgerIntegrityError)
