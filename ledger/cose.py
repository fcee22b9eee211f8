"""COSE_Sign1 with EdDSA (Ed25519): the envelope of tickets and receipts (docs/agent-format.md).

Owns: deterministic CBOR (`det_cbor`, RFC 8949 §4.2.1), signing a payload into a tagged
COSE_Sign1 (`sign1`, RFC 9052 §4.2 and §4.4), and opening one with a pinned key
(`Sign1Verifier`), strictly: the envelope must be exactly what `sign1` makes for that key —
tag 18 and nothing around it, protected header `{1: -8, 4: kid}` byte for byte, an empty
unprotected header, a 64-byte signature, no byte after the envelope, at most
`ENVELOPE_BYTES_MAX` bytes (rules S1-S6 of docs/agent-format.md).

The fast path compares the envelope's fixed prefix with the expected bytes and assembles the
Sig_structure from a precomputed prefix, so a good envelope costs one slice and one Ed25519
verify (no CBOR decoding at all). Only an envelope that fails the fast path is decoded, to say
precisely what is wrong with it (`EnvelopeError.reason`: malformed, bad_alg, unknown_key,
bad_signature).

Pure (cbor2 + cryptography): the agent, the broker and tenants' verifiers import it.

Does not own: what the payload means (orbitq.ledger.tickets, orbitq.ledger.receipts, through
orbitq.ledger._claims), where keys come from, or key ids (orbitq.ledger.note.key_id).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from typing import Final

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from orbitq.ledger.errors import LedgerIntegrityError

__all__ = [
    "ALG_EDDSA",
    "BAD_ALG",
    "BAD_SIGNATURE",
    "ENVELOPE_BYTES_MAX",
    "KID_BYTES",
    "MALFORMED",
    "PUBLIC_KEY_BYTES",
    "SIGNATURE_BYTES",
    "TAG_SIGN1",
    "UNKNOWN_KEY",
    "EnvelopeError",
    "Sign1Verifier",
    "det_cbor",
    "dumps",
    "protected_header",
    "sign1",
]

TAG_SIGN1: Final = 18
"""RFC 9052 §2: the CBOR tag of COSE_Sign1."""
TAG_CWT: Final = 61
"""RFC 8392 §6: the optional CWT tag. Refused (S1): cwt and pycose refuse it too."""
ALG_EDDSA: Final = -8
"""RFC 9053 §2.2: EdDSA; with an Ed25519 key, RFC 8032 Ed25519."""
HEADER_ALG: Final = 1
HEADER_KID: Final = 4
KID_BYTES: Final = 4
"""S2: a key id is `orbitq.ledger.note.key_id(name, public key)`: 4 bytes."""
PUBLIC_KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
ENVELOPE_BYTES_MAX: Final = 8192
"""S5: the largest envelope signed or accepted. The largest ticket the claim limits allow (64
downlink windows with 64-byte station names, a 200-byte issuer) is about 6 KiB; a typical one
is 300-500 bytes, a receipt about 300."""
DEPTH_MAX: Final = 8
"""det_cbor: the deepest nesting of arrays and maps encoded (claim sets nest two deep)."""

# EnvelopeError reasons (stable strings, reported to operators and mapped to ticket refusals).
MALFORMED: Final = "malformed"
BAD_ALG: Final = "bad_alg"
UNKNOWN_KEY: Final = "unknown_key"
BAD_SIGNATURE: Final = "bad_signature"

_SIGNATURE1 = "Signature1"
_TAIL = bytes((0x58, SIGNATURE_BYTES))  # S3: the signature's bstr head (64 bytes)
_UINT64_MAX = 2**64 - 1


class EnvelopeError(LedgerIntegrityError):
    """A COSE_Sign1 envelope was refused. `reason` is one of `malformed` (not the exact
    structure S1-S5 require), `bad_alg` (the protected algorithm is not EdDSA), `unknown_key`
    (the key id is not the pinned key's), `bad_signature`; `detail` says what was found."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[EnvelopeError], tuple[str, str]]:
        return (type(self), (self.reason, self.detail))


# -- deterministic CBOR ----------------------------------------------------------------------------


def det_cbor(value: object) -> bytes:
    """RFC 8949 §4.2.1 deterministic encoding: shortest heads, definite lengths, map keys in
    the bytewise order of their encodings; integers (within ±2^64), text, bytes, bools, null,
    arrays and maps only (no floats, no tags). cbor2's `canonical=True` orders keys
    length-first (RFC 8949 §4.2.3), which differs (for 24 and -1, say), so maps are ordered here
    and cbor2, which keeps insertion order and emits shortest heads, writes them."""
    return dumps(_ordered(value, 0))


_local = threading.local()


def dumps(value: object) -> bytes:
    """`cbor2.dumps(value)` (insertion order kept) with one encoder per thread: cbor2.dumps
    builds a new encoder per call, which costs ~5 us, a quarter of opening a ticket."""
    encoder: tuple[io.BytesIO, cbor2.CBOREncoder] | None = getattr(_local, "encoder", None)
    if encoder is None:
        buffer = io.BytesIO()
        encoder = (buffer, cbor2.CBOREncoder(buffer))
        _local.encoder = encoder
    buffer, writer = encoder
    buffer.seek(0)
    buffer.truncate()
    try:
        writer.encode(value)
    except BaseException:
        _local.encoder = None  # its state after a failure is unknown: make a new one next time
        raise
    return buffer.getvalue()


def _ordered(value: object, depth: int) -> object:
    if value is None or isinstance(value, bool | str | bytes):
        return value
    if isinstance(value, int):
        if not -_UINT64_MAX - 1 <= value <= _UINT64_MAX:
            raise ValueError(f"integer {value} does not fit a CBOR head (it would be a bignum)")
        return value
    if depth >= DEPTH_MAX:
        raise ValueError(f"nested deeper than {DEPTH_MAX} arrays or maps")
    if isinstance(value, list | tuple):
        return [_ordered(item, depth + 1) for item in value]
    if isinstance(value, Mapping):
        keyed = sorted((det_cbor(key), key) for key in value)
        return {key: _ordered(value[key], depth + 1) for _, key in keyed}
    raise TypeError(f"{type(value).__name__} has no deterministic CBOR encoding here")


def bstr_head(length: int) -> bytes:
    """The shortest CBOR head of a byte string of `length` bytes (major type 2)."""
    if length < 24:
        return bytes((0x40 | length,))
    if length < 0x100:
        return bytes((0x58, length))
    if length < 0x10000:
        return b"\x59" + length.to_bytes(2, "big")
    if length <= 0xFFFFFFFF:
        return b"\x5a" + length.to_bytes(4, "big")
    raise ValueError(f"a byte string of {length} bytes")


def protected_header(kid: bytes) -> bytes:
    """S2: the serialized protected header `{1: -8, 4: kid}` (alg EdDSA, key id)."""
    _check_kid(kid)
    return det_cbor({HEADER_ALG: ALG_EDDSA, HEADER_KID: kid})


def _check_kid(kid: bytes) -> None:
    if not isinstance(kid, bytes) or len(kid) != KID_BYTES:
        raise ValueError(f"a key id is {KID_BYTES} bytes (orbitq.ledger.note.key_id)")


def _sig_structure_prefix(protected: bytes) -> bytes:
    """S4: `["Signature1", protected, h'', payload]` up to the payload (RFC 9052 §4.4)."""
    prefix = det_cbor([_SIGNATURE1, protected, b""])
    return b"\x84" + prefix[1:]  # the head of a 4-element array instead of a 3-element one


# -- signing ---------------------------------------------------------------------------------------


def sign1(payload: bytes, private_key: Ed25519PrivateKey, kid: bytes) -> bytes:
    """S1-S5: the tagged COSE_Sign1 of `payload` signed with `private_key` under key id `kid`:
    `18([protected, {}, payload, signature])`. Ed25519 is deterministic, so the same payload
    and key always give the same bytes (cwt and pycose give them too). ValueError if the
    envelope would exceed ENVELOPE_BYTES_MAX (verifiers refuse it)."""
    protected = protected_header(kid)
    body = bstr_head(len(payload)) + payload
    signature = private_key.sign(_sig_structure_prefix(protected) + body)
    envelope = _envelope_prefix(protected) + body + _TAIL + signature
    if len(envelope) > ENVELOPE_BYTES_MAX:
        raise ValueError(
            f"the envelope would be {len(envelope)} bytes; at most {ENVELOPE_BYTES_MAX} (S5)"
        )
    return envelope


def _envelope_prefix(protected: bytes) -> bytes:
    # tag 18 (one byte: 0xd2), array of 4, the protected bstr, the empty unprotected map
    return b"\xd2\x84" + bstr_head(len(protected)) + protected + b"\xa0"


# -- verifying -------------------------------------------------------------------------------------


class Sign1Verifier:
    """Opens envelopes signed by one pinned Ed25519 key with one key id (S1-S6)."""

    __slots__ = ("_key", "_kid", "_prefix", "_protected", "_tbs_prefix")

    def __init__(self, public_key: bytes, kid: bytes) -> None:
        if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_BYTES:
            raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} raw bytes")
        self._key = Ed25519PublicKey.from_public_bytes(public_key)
        self._kid = kid
        self._protected = protected_header(kid)
        self._prefix = _envelope_prefix(self._protected)
        self._tbs_prefix = _sig_structure_prefix(self._protected)

    @property
    def kid(self) -> bytes:
        return self._kid

    def payload(self, envelope: bytes) -> bytes:
        """The payload of `envelope` once its structure and signature check (S1-S6);
        raises EnvelopeError naming what is wrong."""
        size = len(envelope)
        if size > ENVELOPE_BYTES_MAX:
            raise EnvelopeError(
                MALFORMED, f"the envelope is {size} bytes; at most {ENVELOPE_BYTES_MAX} (S5)"
            )
        at = len(self._prefix)
        if size > at + len(_TAIL) + SIGNATURE_BYTES and envelope.startswith(self._prefix):
            start, length = _payload_span(envelope, at)
            end = start + length
            if (
                length >= 0
                and size == end + len(_TAIL) + SIGNATURE_BYTES
                and envelope[end : end + len(_TAIL)] == _TAIL
            ):
                try:
                    # S4: Sig_structure = prefix ‖ the payload's bstr head ‖ the payload.
                    self._key.verify(
                        envelope[end + len(_TAIL) :], self._tbs_prefix + envelope[at:end]
                    )
                except InvalidSignature:
                    raise EnvelopeError(
                        BAD_SIGNATURE, f"the signature does not verify with key {self._kid.hex()}"
                    ) from None
                return envelope[start:end]
        raise diagnose(envelope, self._kid)


def _payload_span(envelope: bytes, at: int) -> tuple[int, int]:
    """(start, length) of the payload bstr whose shortest head is at `at`; length -1 if the
    head is not a shortest-form byte-string head of at most 65,535 bytes."""
    head = envelope[at]
    if 0x40 <= head <= 0x57:
        return at + 1, head - 0x40
    if head == 0x58 and envelope[at + 1] >= 24:
        return at + 2, envelope[at + 1]
    if head == 0x59:
        length = int.from_bytes(envelope[at + 1 : at + 3], "big")
        if length >= 0x100:
            return at + 3, length
    return at, -1


def diagnose(envelope: bytes, kid: bytes) -> EnvelopeError:  # noqa: PLR0911  (a return per rule)
    """Say precisely why `envelope` is not an envelope of key id `kid` exactly as `sign1`
    makes it. Called only once the fast path refused it; never raises (the bytes are anyone's,
    so any decoder failure is `malformed`)."""
    if len(envelope) > ENVELOPE_BYTES_MAX:
        return EnvelopeError(
            MALFORMED, f"the envelope is {len(envelope)} bytes; at most {ENVELOPE_BYTES_MAX} (S5)"
        )
    stream = io.BytesIO(envelope)
    try:
        item = cbor2.CBORDecoder(stream).decode()
    except Exception as error:  # cbor2 raises several types on hostile input; all mean this
        return EnvelopeError(MALFORMED, f"not CBOR: {error}")
    structure = _structure(item)
    if isinstance(structure, EnvelopeError):
        return structure
    protected, unprotected, _, signature = structure
    if unprotected:
        keys = sorted(str(key) for key in unprotected)
        return EnvelopeError(
            MALFORMED,
            f"the unprotected header must be empty (S2); it holds parameters {', '.join(keys)}",
        )
    header = _protected_map(protected)
    if isinstance(header, EnvelopeError):
        return header
    if header.get(HEADER_ALG) != ALG_EDDSA:
        return EnvelopeError(
            BAD_ALG,
            f"the protected header's alg is {header.get(HEADER_ALG)!r}, not EdDSA ({ALG_EDDSA})",
        )
    extra = sorted(str(key) for key in header if key not in (HEADER_ALG, HEADER_KID))
    if extra:
        return EnvelopeError(
            MALFORMED, f"the protected header holds parameters other than alg and kid: {extra}"
        )
    found_kid = header.get(HEADER_KID)
    if found_kid != kid:
        shown = found_kid.hex() if isinstance(found_kid, bytes) else repr(found_kid)
        return EnvelopeError(UNKNOWN_KEY, f"signed with key id {shown}, not {kid.hex()}")
    if protected != protected_header(kid):
        return EnvelopeError(
            MALFORMED, "the protected header is not in deterministic CBOR (RFC 8949 §4.2.1)"
        )
    if len(signature) != SIGNATURE_BYTES:
        return EnvelopeError(
            MALFORMED, f"the signature is {len(signature)} bytes, not {SIGNATURE_BYTES}"
        )
    consumed = stream.tell()
    if consumed < len(envelope):
        return EnvelopeError(
            MALFORMED, f"{len(envelope) - consumed} bytes follow the envelope (S5)"
        )
    return EnvelopeError(
        MALFORMED,
        "the envelope is not in deterministic CBOR (RFC 8949 §4.2.1): a length or a head is "
        "not in its shortest form, or of indefinite length",
    )


def _structure(item: object) -> tuple[bytes, Mapping[object, object], bytes, bytes] | EnvelopeError:
    """S1: `18([bstr, map, bstr, bstr])`, nothing around it."""
    if not isinstance(item, cbor2.CBORTag):
        return EnvelopeError(
            MALFORMED, "untagged: a COSE_Sign1 carries CBOR tag 18 (RFC 9052 §4.2; S1)"
        )
    if item.tag == TAG_CWT:
        return EnvelopeError(
            MALFORMED, "wrapped in the CWT tag 61: send the COSE_Sign1 (tag 18) alone (S1)"
        )
    if item.tag != TAG_SIGN1:
        return EnvelopeError(MALFORMED, f"tag {item.tag} is not COSE_Sign1's tag 18 (S1)")
    value = item.value
    if not isinstance(value, list | tuple) or len(value) != 4:  # cbor2 6 decodes a tuple
        return EnvelopeError(MALFORMED, "a COSE_Sign1 is an array of 4 elements (S1)")
    protected, unprotected, payload, signature = value
    if not (
        isinstance(protected, bytes)
        and isinstance(unprotected, Mapping)
        and isinstance(payload, bytes)
        and isinstance(signature, bytes)
    ):
        return EnvelopeError(
            MALFORMED,
            "a COSE_Sign1 is [protected: bstr, unprotected: map, payload: bstr, signature: bstr]"
            " (S1; a detached payload is not accepted)",
        )
    return protected, unprotected, payload, signature


def _protected_map(protected: bytes) -> Mapping[object, object] | EnvelopeError:
    try:
        header = cbor2.loads(protected)
    except Exception as error:  # hostile bytes: any decoder failure is malformed
        return EnvelopeError(MALFORMED, f"the protected header is not CBOR: {error}")
    if not isinstance(header, Mapping):
        return EnvelopeError(MALFORMED, "the protected header is not a map")
    return header
