"""Conformance: envelopes of orbitq.ledger.cose and of the `cwt` library (an independent COSE
implementation, test-only) are byte-identical, and each verifies the other's (S1-S6).

Ed25519 is deterministic, so two conforming signers over the same payload, protected header and
key must produce the same bytes; any difference in the structure, the header encoding or the
Sig_structure would show here.
"""

from __future__ import annotations

import cwt
import pytest
from cwt import COSE, COSEKey
from cwt.cose_key_interface import COSEKeyInterface
from hypothesis import given, settings

from orbitq.ledger.cose import Sign1Verifier, sign1
from orbitq.ledger.receipts import Receipt, encode_receipt, open_receipt, sign_receipt
from orbitq.ledger.tickets import Ticket, encode_ticket, open_ticket, sign_ticket
from tests.ledger.agent_formats import (
    NODE,
    ORIGIN,
    Key,
    largest_ticket,
    receipts,
    sample_receipt,
    sample_ticket,
    tickets,
)

BROKER = Key.from_seed(ORIGIN, 11)
NODE_KEY = Key.from_seed(NODE, 12)


def cwt_keys(key: Key) -> tuple[COSEKeyInterface, COSEKeyInterface]:
    """(private, public) COSE keys: kty OKP, crv Ed25519, alg EdDSA, with the key id."""
    seed = key.private.private_bytes_raw()
    public = {1: 1, 2: key.kid, 3: -8, -1: 6, -2: key.public}
    return COSEKey.new({**public, -4: seed}), COSEKey.new(public)


def cwt_sign(payload: bytes, key: Key) -> bytes:
    private, _ = cwt_keys(key)
    envelope = COSE.new().encode_and_sign(
        payload, private, protected={1: -8, 4: key.kid}, unprotected={}
    )
    assert isinstance(envelope, bytes)
    return envelope


def cwt_open(envelope: bytes, key: Key) -> bytes:
    _, public = cwt_keys(key)
    payload: bytes = COSE.new(verify_kid=True).decode(envelope, public)
    return payload


@settings(max_examples=25, deadline=None)
@given(tickets())
def test_tickets_are_byte_identical_and_verify_both_ways(ticket: Ticket) -> None:
    ours = sign_ticket(ticket, BROKER.private, BROKER.kid)
    theirs = cwt_sign(encode_ticket(ticket), BROKER)
    assert ours == theirs
    assert cwt_open(ours, BROKER) == encode_ticket(ticket)
    assert open_ticket(theirs, BROKER.public, BROKER.kid) == ticket


@settings(max_examples=25, deadline=None)
@given(receipts())
def test_receipts_are_byte_identical_and_verify_both_ways(receipt: Receipt) -> None:
    ours = sign_receipt(receipt, NODE_KEY.private, NODE_KEY.kid)
    theirs = cwt_sign(encode_receipt(receipt), NODE_KEY)
    assert ours == theirs
    assert cwt_open(ours, NODE_KEY) == encode_receipt(receipt)
    assert open_receipt(theirs, NODE_KEY.public, NODE_KEY.kid) == receipt


@pytest.mark.parametrize(
    "payload",
    [b"", b"x" * 23, b"x" * 24, b"x" * 255, b"x" * 256, encode_ticket(largest_ticket())],
    ids=["empty", "23", "24", "255", "256", "largest ticket"],
)
def test_every_payload_length_head_matches(payload: bytes) -> None:
    """The payload's bstr head is written by hand on both paths: each of its forms."""
    ours = sign1(payload, BROKER.private, BROKER.kid)
    assert ours == cwt_sign(payload, BROKER)
    assert Sign1Verifier(BROKER.public, BROKER.kid).payload(ours) == payload


def test_cwt_refuses_what_a_tampered_envelope_is() -> None:
    """The oracle is not lenient where it matters: a bad signature fails there too."""
    envelope = sign_receipt(sample_receipt(), NODE_KEY.private, NODE_KEY.kid)
    tampered = envelope.replace(b"wasmtime", b"wasmtimf")
    with pytest.raises(cwt.VerifyError):
        cwt_open(tampered, NODE_KEY)
    assert cwt_open(sign_ticket(sample_ticket(), BROKER.private, BROKER.kid), BROKER)
