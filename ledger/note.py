"""C2SP signed notes with Ed25519: keys, signing, parsing and opening (c2sp.org/signed-note).

Owns: key names and key ids (L13); the verifier key string `<name>+<hex id>+<base64(0x01‖key)>`
and the Go signer key string `PRIVATE+KEY+<name>+<hex id>+<base64(0x01‖seed)>` (L13); the note
format, text, blank line, `— <name> <base64(key id ‖ signature)>` lines (L11, L12); the rules
for opening a note: unknown keys ignored, a known key's bad signature rejects the whole note, at
least one known signature required (L14); and the limits (L17).

Does not own: what the text means (orbitq.ledger.checkpoint parses checkpoints), where keys are
stored or how they are protected (the broker writes its signer key with mode 0600), or the
other signature types of the spec (only Ed25519, type 0x01; others are unknown keys, ignored).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from orbitq.ledger import _b64
from orbitq.ledger.errors import (
    KeyFormatError,
    NoteFormatError,
    NoteSignatureError,
    UnknownKeyError,
)

__all__ = [
    "NOTE_BYTES_MAX",
    "NOTE_SIGNATURES_MAX",
    "NoteSignature",
    "OpenedNote",
    "SignedNote",
    "Signer",
    "Verifier",
    "key_id",
    "open_note",
    "parse_note",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_note",
]

NOTE_BYTES_MAX = 256 * 1024
"""L17: the largest note accepted, in UTF-8 bytes. A checkpoint with a dozen Ed25519 signatures
is under 2 KiB; this leaves room for the 16 signatures of up to ~5 kB (post-quantum) that the
spec says a verifier must accept, and bounds the work an attacker can cause."""

NOTE_SIGNATURES_MAX = 100
"""L17: the most signature lines a note may carry (as Go's sumdb/note); the spec asks for >= 16."""

_ED25519 = 0x01  # L13: the signature type byte of Ed25519 in key ids and key strings
_KEY_ID_SIZE = 4
_PUBLIC_KEY_SIZE = 32
_SIGNATURE_SIZE = 64
_SIGNATURE_PREFIX = "\u2014 "  # L12: em dash, space
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")  # L11: ASCII controls other than newline
_HEX_KEY_ID = re.compile("[0-9a-fA-F]{8}")
_PRIVATE_PREFIX = "PRIVATE+KEY+"


def _is_key_name(name: str) -> bool:
    """L13: non-empty, no Unicode space, no '+', no control character, encodable as UTF-8."""
    if not name or "+" in name or _CONTROL.search(name):
        return False
    if any(char.isspace() for char in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def key_id(name: str, public_key_raw: bytes) -> bytes:
    """L13: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ 32-byte Ed25519 public key)[:4], big-endian id."""
    digest = hashlib.sha256()
    digest.update(name.encode("utf-8"))
    digest.update(b"\n")
    digest.update(bytes((_ED25519,)))
    digest.update(public_key_raw)
    return digest.digest()[:_KEY_ID_SIZE]


def _key_ref(name: str, ident: bytes) -> str:
    return f"{name}+{ident.hex()}"


@dataclass(frozen=True, repr=False)
class Verifier:
    """An Ed25519 note verifier: a key name and a 32-byte public key (L13)."""

    name: str
    """The key name; in orbitq, the log's origin."""
    public_key_raw: bytes
    """The 32-byte Ed25519 public key."""
    key_id: bytes = field(init=False)
    """The 4-byte key id derived from name and key."""
    public_key: Ed25519PublicKey = field(init=False, repr=False, compare=False)
    """The key as a `cryptography` object."""

    def __post_init__(self) -> None:
        if not _is_key_name(self.name):
            raise KeyFormatError(
                f"invalid key name {self.name!r}: it must be non-empty, without spaces or '+'"
            )
        if len(self.public_key_raw) != _PUBLIC_KEY_SIZE:
            raise KeyFormatError(
                f"Ed25519 public key has {len(self.public_key_raw)} bytes, not {_PUBLIC_KEY_SIZE}"
            )
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key_raw))
        key = Ed25519PublicKey.from_public_bytes(self.public_key_raw)
        object.__setattr__(self, "public_key", key)

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> Verifier:
        """The verifier of `public_key` under `name`."""
        return cls(name, public_key.public_bytes_raw())

    def verify(self, message: bytes, signature: bytes) -> None:
        """Return if `signature` is this key's Ed25519 signature of `message`; else raise
        NoteSignatureError."""
        if len(signature) != _SIGNATURE_SIZE:
            raise NoteSignatureError(
                f"signature by key {_key_ref(self.name, self.key_id)} has {len(signature)} "
                f"bytes; Ed25519 signatures have {_SIGNATURE_SIZE}: reject the note"
            )
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            raise NoteSignatureError(
                f"signature by key {_key_ref(self.name, self.key_id)} does not verify: the text "
                "was altered after signing, or signed by another key; reject the whole note"
            ) from None

    def __repr__(self) -> str:
        return f"Verifier({_key_ref(self.name, self.key_id)})"

    def verifier_key(self) -> str:
        """L13: the verifier key string `<name>+<hex key id>+<base64(0x01 ‖ public key)>`."""
        encoded = _b64.encode(bytes((_ED25519,)) + self.public_key_raw)
        return f"{_key_ref(self.name, self.key_id)}+{encoded}"


class Signer:
    """An Ed25519 note signer: a key name and a private key (L13). Keep it secret."""

    __slots__ = ("_private_key", "_verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self._verifier = Verifier.from_public_key(name, private_key.public_key())

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random key named `name`."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_private_key(cls, name: str, private_key: Ed25519PrivateKey) -> Signer:
        """The signer of an existing private key under `name`."""
        return cls(name, private_key)

    @property
    def name(self) -> str:
        """The key name, which is written on every signature line."""
        return self._verifier.name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id (L13)."""
        return self._verifier.key_id

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `message` (deterministic, RFC 8032)."""
        return self._private_key.sign(message)

    def verifier(self) -> Verifier:
        """The public half, to verify this signer's notes."""
        return self._verifier

    def verifier_key(self) -> str:
        """L13: the verifier key string to give to verifiers."""
        return self._verifier.verifier_key()

    def signer_key(self) -> str:
        """L13: the secret Go-compatible string `PRIVATE+KEY+<name>+<hex id>+<base64 seed>`."""
        seed = self._private_key.private_bytes_raw()
        encoded = _b64.encode(bytes((_ED25519,)) + seed)
        return f"{_PRIVATE_PREFIX}{_key_ref(self.name, self.key_id)}+{encoded}"

    def __repr__(self) -> str:  # never the private key
        return f"Signer({_key_ref(self.name, self.key_id)})"


def _parse_key_parts(text: str, what: str) -> tuple[str, bytes, bytes]:
    """L13: split `<name>+<hex id>+<base64(0x01 ‖ 32 bytes)>` into name, id, 32 key bytes.

    Messages never quote the key material: this also parses secret keys.
    """
    name, _, rest = text.partition("+")
    hex_id, separator, encoded = rest.partition("+")
    if not separator:
        raise KeyFormatError(f"{what} must look like <name>+<8 hex digits>+<base64 key>")
    if not _is_key_name(name):
        raise KeyFormatError(f"{what} has an invalid key name {name!r}")
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise KeyFormatError(f"{what} for {name!r}: the key id must be 8 hex digits")
    try:
        raw = _b64.decode(encoded)
    except ValueError as error:
        raise KeyFormatError(f"{what} for {name!r}: key data is {error}") from None
    if not raw or raw[0] != _ED25519:
        algorithm = f"0x{raw[0]:02x}" if raw else "missing"
        raise KeyFormatError(
            f"{what} for {name!r}: algorithm {algorithm} is not supported, only Ed25519 (0x01)"
        )
    if len(raw) != 1 + _PUBLIC_KEY_SIZE:
        raise KeyFormatError(f"{what} for {name!r}: an Ed25519 key has 32 bytes after 0x01")
    return name, bytes.fromhex(hex_id), raw[1:]


def parse_verifier_key(vkey: str) -> Verifier:
    """L13: the Verifier of a verifier key string; KeyFormatError if malformed or if its key id
    does not match its name and key."""
    name, ident, public_key_raw = _parse_key_parts(vkey, "verifier key")
    verifier = Verifier(name, public_key_raw)
    if verifier.key_id != ident:
        raise KeyFormatError(
            f"verifier key {_key_ref(name, ident)}: the key id does not match the name and key "
            f"(expected {verifier.key_id.hex()}); the key string was altered or mistyped"
        )
    return verifier


def parse_signer_key(skey: str) -> Signer:
    """L13: the Signer of a Go `PRIVATE+KEY+...` string; KeyFormatError if malformed or if its
    key id does not match the name and the derived public key."""
    if not skey.startswith(_PRIVATE_PREFIX):
        raise KeyFormatError("signer key must start with PRIVATE+KEY+")
    name, ident, seed = _parse_key_parts(skey[len(_PRIVATE_PREFIX) :], "signer key")
    signer = Signer(name, Ed25519PrivateKey.from_private_bytes(seed))
    if signer.key_id != ident:
        raise KeyFormatError(
            f"signer key {_key_ref(name, ident)}: the key id does not match the name and the "
            "public key of this seed; the key string was altered or mistyped"
        )
    return signer


@dataclass(frozen=True)
class NoteSignature:
    """One parsed, not yet verified, signature line (L12)."""

    name: str
    """The key name on the line."""
    key_id: bytes
    """The first four bytes of the decoded signature field."""
    signature: bytes
    """The rest of the decoded field: for Ed25519, 64 bytes."""


@dataclass(frozen=True)
class SignedNote:
    """A note split into its text and its signature lines, nothing verified (L11)."""

    text: str
    """The signed text, ending in a newline, without the separating blank line."""
    signatures: tuple[NoteSignature, ...]
    """The signature lines in order."""


@dataclass(frozen=True)
class OpenedNote:
    """A note whose signatures by the given keys all verified, and at least one exists (L14)."""

    text: str
    """The signed text; trust it only as far as you trust the keys in `verified`."""
    verified: tuple[Verifier, ...]
    """The known keys whose signatures verified, each once, in the order they appear."""


def _check_text(text: str, what: str) -> bytes:
    """L11: UTF-8 without ASCII control characters other than newline; returns the bytes."""
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteFormatError(f"{what} is not valid UTF-8 (lone surrogate)") from None
    if len(encoded) > NOTE_BYTES_MAX:
        raise NoteFormatError(f"{what} has {len(encoded)} bytes; the limit is {NOTE_BYTES_MAX}")
    found = _CONTROL.search(text)
    if found:
        raise NoteFormatError(
            f"{what} contains control character {found.group()!r} at offset {found.start()}; "
            "only newline is allowed"
        )
    return encoded


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """L11, L12: `text`, a blank line, then one signature line per signer, in order.

    The text must end in a newline and contain no control character other than newline
    (NoteFormatError). Signing with no signer, or twice with one key, is a ValueError.
    """
    if not signers:
        raise ValueError("sign_note needs at least one signer")
    if len(signers) > NOTE_SIGNATURES_MAX:
        raise ValueError(f"at most {NOTE_SIGNATURES_MAX} signatures fit in a note (L17)")
    if len({(signer.name, signer.key_id) for signer in signers}) != len(signers):
        raise ValueError("two signers share a key name and key id")
    if not text.endswith("\n"):
        raise NoteFormatError("note text must end with a newline")
    message = _check_text(text, "note text")
    lines = [
        f"{_SIGNATURE_PREFIX}{signer.name} {_b64.encode(signer.key_id + signer.sign(message))}\n"
        for signer in signers
    ]
    note = text + "\n" + "".join(lines)
    _check_text(note, "signed note")
    assert parse_note(note).text == text  # what we write, we can read back
    return note


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    """L12: `— <name> <base64(key id ‖ signature)>` (newline already removed)."""
    if not line.startswith(_SIGNATURE_PREFIX):
        raise NoteFormatError(
            f"signature line {number} does not start with an em dash (U+2014) and a space"
        )
    name, separator, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not separator or not _is_key_name(name):
        raise NoteFormatError(f"signature line {number} has no valid key name then a space")
    try:
        raw = _b64.decode(encoded)
    except ValueError as error:
        raise NoteFormatError(f"signature line {number} ({name}): {error}") from None
    if len(raw) <= _KEY_ID_SIZE:
        raise NoteFormatError(f"signature line {number} ({name}) is too short for a signature")
    return NoteSignature(name, raw[:_KEY_ID_SIZE], raw[_KEY_ID_SIZE:])


def _as_text(note: str | bytes) -> str:
    if isinstance(note, str):
        return note
    if len(note) > NOTE_BYTES_MAX:
        raise NoteFormatError(f"note has {len(note)} bytes; the limit is {NOTE_BYTES_MAX}")
    try:
        return note.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NoteFormatError(f"note is not valid UTF-8 at byte {error.start}") from None


def parse_note(note: str | bytes) -> SignedNote:
    """L11, L12, L17: split a note into text and signature lines; NoteFormatError if malformed.

    Verifies nothing: use `open_note` before trusting the text.
    """
    note = _as_text(note)
    _check_text(note, "note")
    # L11: the text ends at the last blank line; everything after it is signature lines.
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteFormatError("note has no blank line between its text and its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise NoteFormatError("note must end with a signature line ending in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > NOTE_SIGNATURES_MAX:
        raise NoteFormatError(
            f"note has {len(lines)} signature lines; the limit is {NOTE_SIGNATURES_MAX}"
        )
    signatures = tuple(_parse_signature_line(line, n) for n, line in enumerate(lines, 1))
    return SignedNote(text, signatures)


def _index(verifiers: Iterable[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        ref = (verifier.name, verifier.key_id)
        if known.setdefault(ref, verifier) != verifier:
            raise ValueError(
                f"two different verifier keys share the name and key id "
                f"{_key_ref(verifier.name, verifier.key_id)}"
            )
    if not known:
        raise ValueError("open_note needs at least one verifier key")
    return known


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> OpenedNote:
    """L14: parse `note` and verify every signature by a known key; return the verified text.

    A signature whose name and key id both match a known key must verify, or the whole note is
    rejected (NoteSignatureError). Signatures by other keys are ignored. If no known key signed,
    UnknownKeyError. Malformed notes raise NoteFormatError.
    """
    known = _index(verifiers)
    parsed = parse_note(note)
    message = parsed.text.encode("utf-8")
    verified: dict[tuple[str, bytes], Verifier] = {}
    for signature in parsed.signatures:
        ref = (signature.name, signature.key_id)
        verifier = known.get(ref)
        if verifier is None:
            continue  # L14: unknown key (another log, a witness, a rotated key): ignore
        verifier.verify(message, signature.signature)  # L14: every one, repeats included
        verified.setdefault(ref, verifier)
    if not verified:
        expected = ", ".join(sorted(_key_ref(*ref) for ref in known))
        present = ", ".join(_key_ref(s.name, s.key_id) for s in parsed.signatures[:5])
        more = " …" if len(parsed.signatures) > 5 else ""
        raise UnknownKeyError(
            f"note is not signed by any expected key ({expected}); it is signed by {present}"
            f"{more}: check the verifier key you pinned, or whether the key was rotated"
        )
    return OpenedNote(parsed.text, tuple(verified.values()))
