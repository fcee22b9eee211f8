"""orbitq.ledger.receipts: the claim set round trips, receipts open only under their node key,
and the charge of a receipt (R1-R8)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitq.ledger.cose import (
    BAD_SIGNATURE,
    MALFORMED,
    UNKNOWN_KEY,
    EnvelopeError,
    det_cbor,
    sign1,
)
from orbitq.ledger.errors import LedgerIntegrityError
from orbitq.ledger.model import Kind
from orbitq.ledger.receipts import (
    OUTCOME,
    RECEIPT_CLAIMS,
    RESULT_SHA256,
    Charge,
    Receipt,
    ReceiptError,
    ReceiptVerifier,
    RunOutcome,
    charge_of,
    cpu_core_seconds,
    decode_receipt,
    encode_receipt,
    link_seconds_of,
    open_receipt,
    receipt_digest,
    sign_receipt,
)
from tests.ledger.agent_formats import NODE, RATE, Key, receipts, sample_receipt

NODE_KEY = Key.from_seed(NODE, 3)
ENVELOPE = sign_receipt(sample_receipt(), NODE_KEY.private, NODE_KEY.kid)


def refusal(envelope: bytes, key: Key = NODE_KEY) -> ReceiptError:
    with pytest.raises(ReceiptError) as caught:
        open_receipt(envelope, key.public, key.kid)
    return caught.value


def test_the_sample_receipt_claims_are_the_documented_ones() -> None:
    claims = cbor2.loads(encode_receipt(sample_receipt()))
    assert list(claims) == [1, 6, 7, *range(-65601, -65615, -1)]
    assert set(claims) == set(RECEIPT_CLAIMS)
    assert claims[OUTCOME] == 1
    assert len(ENVELOPE) < 320


@given(receipts())
def test_any_receipt_encodes_deterministically_and_decodes_equal(receipt: Receipt) -> None:
    payload = encode_receipt(receipt)
    assert payload == det_cbor(cbor2.loads(payload))
    assert decode_receipt(payload) == receipt
    assert (RESULT_SHA256 in cbor2.loads(payload)) == (receipt.result_sha256 is not None)


@settings(max_examples=50)
@given(receipts())
def test_any_receipt_signs_and_opens_equal(receipt: Receipt) -> None:
    envelope = sign_receipt(receipt, NODE_KEY.private, NODE_KEY.kid)
    assert open_receipt(envelope, NODE_KEY.public, NODE_KEY.kid) == receipt
    assert sign_receipt(receipt, NODE_KEY.private, NODE_KEY.kid) == envelope


def test_the_outcome_is_kept_as_a_run_outcome() -> None:
    receipt = sample_receipt(outcome=3)
    assert receipt.outcome is RunOutcome.OUT_OF_FUEL
    assert decode_receipt(encode_receipt(receipt)).outcome is RunOutcome.OUT_OF_FUEL


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"outcome": 0}, "not a RunOutcome"),
        ({"outcome": 8}, "not a RunOutcome"),
        ({"exit_code": 2**32}, "exit_code must be 0..4294967295"),
        ({"runtime": "r" * 65}, "runtime must be 1..64"),
        ({"ticket_sha256": b""}, "ticket_sha256 must be 32 bytes"),
        ({"result_sha256": bytes(31)}, "result_sha256 must be 32 bytes"),
        ({"start": 10, "end": 9}, "before start"),
        ({"fuel": -1}, "fuel must be 0.."),
        ({"request_id": "x"}, "32 lower-case hex"),
    ],
)
def test_an_invalid_receipt_cannot_be_made(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_receipt(**changes)


def test_a_receipt_opens_only_under_its_node_key() -> None:
    assert open_receipt(ENVELOPE, NODE_KEY.public, NODE_KEY.kid) == sample_receipt()
    assert ReceiptVerifier(NODE_KEY.public, NODE_KEY.kid).open(ENVELOPE) == sample_receipt()
    other = Key.from_seed(NODE, 4)
    assert refusal(ENVELOPE, other).reason == UNKNOWN_KEY
    same_kid = Key(NODE, other.private)
    forged = sign1(encode_receipt(sample_receipt()), same_kid.private, NODE_KEY.kid)
    assert refusal(forged).reason == BAD_SIGNATURE
    tampered = ENVELOPE.replace(b"wasmtime 51.0.0", b"wasmtime 51.0.1")
    assert refusal(tampered).reason == BAD_SIGNATURE


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        (cbor2.loads(encode_receipt(sample_receipt())) | {OUTCOME: 0}, "not a RunOutcome"),
        (cbor2.loads(encode_receipt(sample_receipt())) | {OUTCOME: "ok"}, "(outcome)"),
        (cbor2.loads(encode_receipt(sample_receipt())) | {-65700: 0}, "unknown claim -65700"),
        (encode_receipt(sample_receipt()) + b"\x00", "deterministic CBOR"),
        (b"\xa0", "claims missing: node, issued_at, request_id"),
    ],
)
def test_a_malformed_receipt_is_refused_even_when_signed(claims: object, detail: str) -> None:
    payload = claims if isinstance(claims, bytes) else cbor2.dumps(claims)
    error = refusal(sign1(payload, NODE_KEY.private, NODE_KEY.kid))
    assert error.reason == MALFORMED
    assert detail in error.detail
    assert isinstance(error, EnvelopeError)
    assert isinstance(error, LedgerIntegrityError)


@settings(max_examples=200)
@given(st.data())
def test_any_single_flipped_byte_is_refused_with_a_reason(data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(ENVELOPE) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = ENVELOPE[:at] + bytes([ENVELOPE[at] ^ flip]) + ENVELOPE[at + 1 :]
    assert refusal(tampered).reason in (MALFORMED, BAD_SIGNATURE, UNKNOWN_KEY, "bad_alg")


def test_the_digest_is_sha256_of_the_envelope() -> None:
    assert receipt_digest(ENVELOPE) == hashlib.sha256(ENVELOPE).digest()


# -- charges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fuel", "rate", "seconds"),
    [(0, RATE, 0), (1, RATE, 1), (RATE, RATE, 1), (RATE + 1, RATE, 2), (10 * RATE, RATE, 10)],
)
def test_core_seconds_round_up(fuel: int, rate: int, seconds: int) -> None:
    assert cpu_core_seconds(fuel, rate) == seconds


@pytest.mark.parametrize(
    ("size", "mbps", "seconds"),
    [(0, 100, 0), (1, 100, 1), (12_500_000, 100, 1), (12_500_001, 100, 2), (125_000_000, 10, 100)],
)
def test_link_seconds_round_up(size: int, mbps: int, seconds: int) -> None:
    assert link_seconds_of(size, mbps) == seconds


def test_rates_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate"):
        cpu_core_seconds(1, 0)
    with pytest.raises(ValueError, match="rate"):
        link_seconds_of(1, 0)


@given(receipts())
def test_the_charge_follows_the_receipt(receipt: Receipt) -> None:
    charge = charge_of(receipt)
    assert charge.cpu == receipt.cpu_core_seconds
    assert charge.storage * 3600 >= receipt.storage_mb_seconds > (charge.storage - 1) * 3600
    assert charge.link == receipt.link_seconds + receipt.uplink_seconds
    assert [charge.of(kind) for kind in Kind] == [charge.cpu, charge.storage, charge.link]


def test_the_sample_charge() -> None:
    receipt = sample_receipt(storage_mb_seconds=3601)
    assert charge_of(receipt) == Charge(cpu=83, storage=2, link=3)
    assert charge_of(replace(receipt, storage_mb_seconds=3600)).storage == 1


def test_the_documented_vector() -> None:
    """docs/agent-format.md R8: the sample receipt under the key of seed 00..03."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "agent-format.md"
    text = docs.read_text(encoding="utf-8")
    block = text.split("receipt of tests/ledger/agent_formats.py signs to\n\n```\n", 1)[1]
    documented = bytes.fromhex("".join(block.split("```", 1)[0].split()))
    assert NODE_KEY.private.private_bytes_raw() == bytes(31) + b"\x03"
    assert documented == ENVELOPE
    assert NODE_KEY.public.hex() in text
    assert NODE_KEY.kid.hex() in text
    assert receipt_digest(documented).hex() in text
