"""orbitq.ledger.cose: deterministic CBOR, and COSE_Sign1 envelopes opened strictly (S1-S6).

Every refused envelope gets an EnvelopeError with a precise reason, never another exception,
whatever its bytes: properly signed envelopes that break one rule are built by hand below.
"""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitq.ledger.cose import (
    BAD_ALG,
    BAD_SIGNATURE,
    ENVELOPE_BYTES_MAX,
    MALFORMED,
    UNKNOWN_KEY,
    EnvelopeError,
    Sign1Verifier,
    det_cbor,
    protected_header,
    sign1,
)
from orbitq.ledger.errors import LedgerIntegrityError
from tests.ledger.agent_formats import Key

KEY = Key.from_seed("orbitq.example/ledger", 7)
OTHER = Key.from_seed("orbitq.example/ledger", 8)
PAYLOAD = det_cbor({1: "orbitq.example/ledger", 2: "node-1", 7: bytes(16)})
VERIFIER = Sign1Verifier(KEY.public, KEY.kid)
REASONS = {MALFORMED, BAD_ALG, UNKNOWN_KEY, BAD_SIGNATURE}


def craft(
    protected: bytes | None = None,
    unprotected: dict[int, object] | None = None,
    payload: bytes = PAYLOAD,
    *,
    tag: int | None = 18,
    wrap: int | None = None,
    key: Key = KEY,
) -> bytes:
    """An envelope signed properly over whatever protected header it carries."""
    protected = protected_header(key.kid) if protected is None else protected
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    body: object = [protected, unprotected or {}, payload, key.private.sign(to_sign)]
    if tag is not None:
        body = cbor2.CBORTag(tag, body)
    if wrap is not None:
        body = cbor2.CBORTag(wrap, body)
    return cbor2.dumps(body)


def refusal(envelope: bytes) -> EnvelopeError:
    with pytest.raises(EnvelopeError) as caught:
        VERIFIER.payload(envelope)
    return caught.value


# -- deterministic CBOR ------------------------------------------------------------------------


def test_map_keys_are_ordered_bytewise_not_length_first() -> None:
    """RFC 8949 §4.2.1 (bytewise) and §4.2.3 (length-first, cbor2's canonical) differ here."""
    assert det_cbor({24: 1, -1: 2}).hex() == "a21818012002"
    assert cbor2.dumps({24: 1, -1: 2}, canonical=True).hex() == "a220021818 01".replace(" ", "")


@given(
    st.dictionaries(
        st.integers(-(2**64), 2**64 - 1) | st.text(max_size=4),
        st.integers(-(2**64), 2**64 - 1),
    )
)
def test_map_keys_follow_the_order_of_their_encodings(value: dict[object, int]) -> None:
    encoded = det_cbor(value)
    decoded = cbor2.loads(encoded)
    keys = list(decoded)
    assert keys == sorted(keys, key=cbor2.dumps)
    assert decoded == value
    assert det_cbor(decoded) == encoded


@pytest.mark.parametrize(
    "value", [1.5, 2**64, -(2**64) - 1, {1: {2: {3: {4: {5: {6: {7: {8: {}}}}}}}}}, object()]
)
def test_values_without_a_deterministic_encoding_here_are_refused(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        det_cbor(value)


# -- signing and opening -----------------------------------------------------------------------


def test_an_envelope_is_exactly_the_cbor_of_the_cose_sign1_structure() -> None:
    envelope = sign1(PAYLOAD, KEY.private, KEY.kid)
    decoded = cbor2.loads(envelope)
    assert decoded.tag == 18
    protected, unprotected, payload, signature = decoded.value
    assert cbor2.loads(protected) == {1: -8, 4: KEY.kid}
    assert (unprotected, payload) == ({}, PAYLOAD)
    assert len(signature) == 64
    assert cbor2.dumps(decoded) == envelope
    assert envelope == craft()  # the hand-built envelope of the tests is the real one
    assert VERIFIER.payload(envelope) == PAYLOAD


@given(st.binary(max_size=ENVELOPE_BYTES_MAX - 100))
def test_any_payload_round_trips(payload: bytes) -> None:
    envelope = sign1(payload, KEY.private, KEY.kid)
    assert VERIFIER.payload(envelope) == payload
    assert sign1(payload, KEY.private, KEY.kid) == envelope  # Ed25519 is deterministic


def test_the_signer_refuses_what_verifiers_refuse() -> None:
    with pytest.raises(ValueError, match="at most 8192"):
        sign1(bytes(ENVELOPE_BYTES_MAX), KEY.private, KEY.kid)
    with pytest.raises(ValueError, match="4 bytes"):
        sign1(PAYLOAD, KEY.private, b"12345")
    with pytest.raises(ValueError, match="32 raw bytes"):
        Sign1Verifier(KEY.public[:31], KEY.kid)


CASES = {
    "trailing bytes": (craft() + b"\x00", MALFORMED, "1 bytes follow the envelope"),
    "untagged": (craft(tag=None), MALFORMED, "untagged"),
    "wrapped in tag 61": (craft(wrap=61), MALFORMED, "CWT tag 61"),
    "another tag": (craft(tag=98), MALFORMED, "tag 98"),
    "alg only in the unprotected header": (
        craft(det_cbor({4: KEY.kid}), {1: -8}),
        MALFORMED,
        "unprotected header must be empty",
    ),
    "kid in the unprotected header too": (
        craft(unprotected={4: KEY.kid}),
        MALFORMED,
        "unprotected header must be empty",
    ),
    "no alg": (craft(det_cbor({4: KEY.kid})), BAD_ALG, "alg is None"),
    "ES256 instead of EdDSA": (craft(det_cbor({1: -7, 4: KEY.kid})), BAD_ALG, "alg is -7"),
    "an extra protected parameter": (
        craft(det_cbor({1: -8, 3: 0, 4: KEY.kid})),
        MALFORMED,
        "other than alg and kid",
    ),
    "protected keys out of order": (
        craft(cbor2.dumps({4: KEY.kid, 1: -8})),
        MALFORMED,
        "protected header is not in deterministic CBOR",
    ),
    "protected header not a map": (craft(det_cbor([1, -8])), MALFORMED, "not a map"),
    "protected header not CBOR": (craft(b"\x1c"), MALFORMED, "not CBOR"),
    "another key id": (craft(key=Key.from_seed("x", 8)), UNKNOWN_KEY, "not " + KEY.kid.hex()),
    "no key id": (craft(det_cbor({1: -8})), UNKNOWN_KEY, "key id None"),
    "another key under our key id": (
        craft(protected_header(KEY.kid), key=OTHER),
        BAD_SIGNATURE,
        "does not verify",
    ),
    "a tampered payload": (
        craft()[:20] + bytes([craft()[20] ^ 1]) + craft()[21:],
        BAD_SIGNATURE,
        "does not verify",
    ),
    "a non-shortest payload length": (
        craft()[:13] + b"\x59\x00" + craft()[14:],
        MALFORMED,
        "deterministic",
    ),
    "three elements": (cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b""])), MALFORMED, "4 elements"),
    "detached payload": (
        cbor2.dumps(cbor2.CBORTag(18, [protected_header(KEY.kid), {}, None, bytes(64)])),
        MALFORMED,
        "detached payload",
    ),
    "a short signature": (
        cbor2.dumps(cbor2.CBORTag(18, [protected_header(KEY.kid), {}, PAYLOAD, bytes(63)])),
        MALFORMED,
        "63 bytes",
    ),
    "not CBOR": (b"\xd2\x84\xff", MALFORMED, "not CBOR"),
    "empty": (b"", MALFORMED, "not CBOR"),
    "oversized": (craft(payload=bytes(ENVELOPE_BYTES_MAX)), MALFORMED, "at most 8192"),
}


@pytest.mark.parametrize(("envelope", "reason", "detail"), CASES.values(), ids=CASES)
def test_each_broken_rule_is_refused_with_its_reason(
    envelope: bytes, reason: str, detail: str
) -> None:
    error = refusal(envelope)
    assert error.reason == reason
    assert detail in error.detail
    assert isinstance(error, LedgerIntegrityError)


@settings(max_examples=300)
@given(st.data())
def test_any_single_flipped_byte_is_refused_precisely(data: st.DataObject) -> None:
    envelope = sign1(data.draw(st.binary(max_size=300)), KEY.private, KEY.kid)
    at = data.draw(st.integers(0, len(envelope) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = envelope[:at] + bytes([envelope[at] ^ flip]) + envelope[at + 1 :]
    assert refusal(tampered).reason in REASONS


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_any_bytes_are_refused_with_a_reason_never_another_exception(data: bytes) -> None:
    assert refusal(data).reason in REASONS


@given(st.binary(min_size=1, max_size=20))
def test_any_bytes_after_an_envelope_are_refused(extra: bytes) -> None:
    error = refusal(sign1(PAYLOAD, KEY.private, KEY.kid) + extra)
    assert error.reason == MALFORMED


def test_an_envelope_error_survives_pickling() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(EnvelopeError(BAD_ALG, "alg is -7")))
    assert (error.reason, error.detail) == (BAD_ALG, "alg is -7")
