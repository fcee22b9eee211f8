"""orbitq.ledger.tickets: the claim set round trips, and every refusal reason onboard (T1-T9)."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from dataclasses import replace

import cbor2
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from orbitq.ledger.cose import ENVELOPE_BYTES_MAX, EnvelopeError, det_cbor, sign1
from orbitq.ledger.tickets import (
    CTI,
    DOWNLINK,
    DOWNLINK_WINDOWS_MAX,
    EXP,
    INPUT_SHA256,
    ISS,
    SUB,
    TICKET_CLAIMS,
    DownlinkWindow,
    RefusalReason,
    Ticket,
    TicketRefused,
    TicketVerifier,
    decode_ticket,
    encode_ticket,
    open_ticket,
    peek_request_id,
    sign_ticket,
    ticket_digest,
)
from tests.ledger.agent_formats import (
    NODE,
    NOW,
    ORIGIN,
    REQUEST_ID,
    Key,
    largest_ticket,
    sample_ticket,
    tickets,
)

BROKER = Key.from_seed(ORIGIN, 1)
VERIFIER = TicketVerifier(BROKER.public, BROKER.kid, ORIGIN)
SKEW = 30


def never_run(_: str) -> bool:
    return False


def open_(
    envelope: bytes,
    *,
    node: str = NODE,
    now: int = NOW,
    already_run: Callable[[str], bool] = never_run,
) -> Ticket:
    return VERIFIER.open(envelope, node=node, now=now, skew_seconds=SKEW, already_run=already_run)


def refused(envelope: bytes, **context: object) -> TicketRefused:
    with pytest.raises(TicketRefused) as caught:
        open_(envelope, **context)  # type: ignore[arg-type]
    return caught.value


def signed_claims(claims: object, key: Key = BROKER) -> bytes:
    """A properly signed envelope over any claim set, even one the encoder would not make."""
    payload = claims if isinstance(claims, bytes) else cbor2.dumps(claims)
    return sign1(payload, key.private, key.kid)


def claims_of(ticket: Ticket) -> dict[int, object]:
    decoded: dict[int, object] = cbor2.loads(encode_ticket(ticket))
    return decoded


# -- the claim set -------------------------------------------------------------------------


def test_the_sample_ticket_claims_are_the_documented_ones() -> None:
    claims = claims_of(sample_ticket())
    assert claims[ISS] == ORIGIN
    assert claims[SUB] == NODE
    assert claims[CTI] == bytes.fromhex(REQUEST_ID)
    assert claims[DOWNLINK] == [
        ["gs-svalbard", NOW + 5400, NOW + 5880],
        ["gs-awarua", NOW + 9000, NOW + 9420],
    ]
    assert set(claims) == set(TICKET_CLAIMS)
    assert list(claims) == [1, 2, 4, 5, 6, 7, *range(-65537, -65550, -1)]


@given(tickets())
def test_any_ticket_encodes_deterministically_and_decodes_equal(ticket: Ticket) -> None:
    payload = encode_ticket(ticket)
    assert payload == det_cbor(cbor2.loads(payload))  # RFC 8949 §4.2.1, checked independently
    assert decode_ticket(payload) == ticket
    if ticket.input_sha256 is None:
        assert INPUT_SHA256 not in cbor2.loads(payload)


@settings(max_examples=50)
@given(tickets())
def test_any_ticket_signs_and_opens_equal(ticket: Ticket) -> None:
    assume(ticket.not_before < ticket.expires)
    envelope = sign_ticket(ticket, BROKER.private, BROKER.kid)
    assert sign_ticket(ticket, BROKER.private, BROKER.kid) == envelope
    verifier = TicketVerifier(BROKER.public, BROKER.kid, ticket.issuer)
    opened = verifier.open(
        envelope,
        node=ticket.node,
        now=ticket.not_before,
        skew_seconds=0,
        already_run=never_run,
    )
    assert opened == ticket


def test_the_largest_ticket_fits_the_envelope_limit() -> None:
    envelope = sign_ticket(largest_ticket(), BROKER.private, BROKER.kid)
    assert 5000 < len(envelope) <= ENVELOPE_BYTES_MAX
    assert len(sign_ticket(sample_ticket(), BROKER.private, BROKER.kid)) < 400


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"issuer": ""}, "issuer must be 1..200"),
        ({"node": "n" * 65}, "node must be 1..64"),
        ({"node": "a\nb"}, "control characters"),
        ({"request_id": "0F" * 16}, "32 lower-case hex"),
        ({"cpu_millicores": -1}, "cpu_millicores must be 0.."),
        ({"fuel_max": 2**63}, "fuel_max must be 0.."),
        ({"start": True}, "start must be an unsigned integer, not bool"),
        ({"workload_sha256": b"x"}, "workload_sha256 must be 32 bytes"),
        ({"input_sha256": "ab"}, "input_sha256 must be a byte string"),
        ({"end": NOW}, "end"),
        ({"not_before": NOW + 10_000}, "expires"),
        ({"downlink": [DownlinkWindow("gs", 1, 2)] * (DOWNLINK_WINDOWS_MAX + 1)}, "at most 64"),
        ({"downlink": [("gs", 1, 2)]}, "DownlinkWindow"),
    ],
)
def test_an_invalid_ticket_cannot_be_made(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_ticket(**changes)


def test_a_window_is_checked() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        DownlinkWindow("gs", 2, 1)
    with pytest.raises(ValueError, match=r"station must be 1\.\.64"):
        DownlinkWindow("", 1, 2)
    assert sample_ticket(downlink=[DownlinkWindow("gs", 1, 2)]).downlink == (
        DownlinkWindow("gs", 1, 2),
    )


# -- refusals (T8) -------------------------------------------------------------------------

ENVELOPE = sign_ticket(sample_ticket(), BROKER.private, BROKER.kid)


def test_a_good_ticket_opens() -> None:
    assert open_(ENVELOPE) == sample_ticket()


def test_bad_signature() -> None:
    tampered = ENVELOPE.replace(b"starlink-31234", b"starlink-31235")
    assert refused(tampered).reason is RefusalReason.BAD_SIGNATURE
    other = Key(ORIGIN, Key.from_seed(ORIGIN, 2).private)
    forged = sign1(encode_ticket(sample_ticket()), other.private, BROKER.kid)
    assert refused(forged).reason is RefusalReason.BAD_SIGNATURE


def test_unknown_key() -> None:
    other = Key.from_seed(ORIGIN, 2)
    error = refused(sign_ticket(sample_ticket(), other.private, other.kid))
    assert error.reason is RefusalReason.UNKNOWN_KEY
    assert other.kid.hex() in error.detail
    assert error.request_id == REQUEST_ID  # read, unverified, for the refusal report


def test_wrong_issuer() -> None:
    envelope = sign_ticket(sample_ticket(issuer="evil.example/ledger"), BROKER.private, BROKER.kid)
    error = refused(envelope)
    assert error.reason is RefusalReason.WRONG_ISSUER
    assert "evil.example/ledger" in error.detail


def test_wrong_node() -> None:
    error = refused(ENVELOPE, node="starlink-99999")
    assert error.reason is RefusalReason.WRONG_NODE
    assert (error.request_id, "starlink-31234") == (REQUEST_ID, error.detail.split("'")[1])


def test_expired_at_expiry_plus_skew_not_before() -> None:
    expires = sample_ticket().expires
    assert open_(ENVELOPE, now=expires + SKEW - 1) == sample_ticket()
    error = refused(ENVELOPE, now=expires + SKEW)
    assert error.reason is RefusalReason.EXPIRED


def test_not_yet_valid_before_not_before_minus_skew() -> None:
    not_before = sample_ticket().not_before
    assert open_(ENVELOPE, now=not_before - SKEW) == sample_ticket()
    error = refused(ENVELOPE, now=not_before - SKEW - 1)
    assert error.reason is RefusalReason.NOT_YET_VALID


def test_replay_of_a_request_already_run() -> None:
    seen: list[str] = []

    def already_run(request_id: str) -> bool:
        seen.append(request_id)
        return True

    error = refused(ENVELOPE, already_run=already_run)
    assert error.reason is RefusalReason.REPLAY
    assert seen == [REQUEST_ID]


def test_the_checks_come_in_the_documented_order() -> None:
    """A ticket for another node that is also expired and a replay is refused as WRONG_NODE."""
    assert refused(ENVELOPE, node="x", now=NOW * 2, already_run=lambda _: True).reason is (
        RefusalReason.WRONG_NODE
    )


def _duplicate_sub(ticket: Ticket) -> bytes:
    """The claim map with `sub` twice: the second says another node (a decoder that keeps the
    last value would run it there)."""
    payload = encode_ticket(ticket)
    assert payload[0] == 0xB3  # a map of 19 entries
    return bytes([0xB4]) + payload[1:] + det_cbor(SUB) + det_cbor("evil-node")


MALFORMED_CLAIMS = {
    "duplicate claim key": (_duplicate_sub(sample_ticket()), "repeated"),
    "unknown claim": (claims_of(sample_ticket()) | {-70000: 1}, "unknown claim -70000"),
    "text claim key": ({"iss": ORIGIN}, "not an integer"),
    "missing claim": (
        {k: v for k, v in claims_of(sample_ticket()).items() if k != EXP},
        "claims missing: expires",
    ),
    "keys out of order": (
        dict(reversed(list(claims_of(sample_ticket()).items()))),
        "deterministic order",
    ),
    "a number as text": (claims_of(sample_ticket()) | {-65540: "1000"}, "claim -65540"),
    "a negative number": (
        claims_of(sample_ticket()) | {-65540: -1},
        "(cpu_millicores) must be 0..",
    ),
    "a bool": (claims_of(sample_ticket()) | {-65541: True}, "not bool"),
    "a float": (claims_of(sample_ticket()) | {-65541: 1.0}, "not float"),
    "a short cti": (claims_of(sample_ticket()) | {CTI: b"\x01"}, "(request_id) must be 16 bytes"),
    "a window of two": (claims_of(sample_ticket()) | {DOWNLINK: [["gs", 1]]}, "[station, start"),
    "too many windows": (
        claims_of(sample_ticket()) | {DOWNLINK: [["gs", 1, 2]] * 65},
        "at most 64",
    ),
    "not a map": ([1, 2], "not a CBOR map"),
    "an indefinite map": (
        b"\xbf" + encode_ticket(sample_ticket())[1:] + b"\xff",
        "indefinite",
    ),
    "a non-shortest integer": (
        encode_ticket(sample_ticket()).replace(b"\x19\x03\xe8", b"\x1a\x00\x00\x03\xe8"),
        "deterministic CBOR",
    ),
    "bytes after the map": (encode_ticket(sample_ticket()) + b"\x00", "deterministic CBOR"),
    "not CBOR": (b"\xb3\x1c", "not CBOR"),
}


@pytest.mark.parametrize(("claims", "detail"), MALFORMED_CLAIMS.values(), ids=MALFORMED_CLAIMS)
def test_a_malformed_claim_set_is_refused_even_when_signed(claims: object, detail: str) -> None:
    error = refused(signed_claims(claims))
    assert error.reason is RefusalReason.MALFORMED
    assert detail in error.detail


@pytest.mark.parametrize(
    "envelope",
    [
        ENVELOPE + b"\x00",
        cbor2.dumps(cbor2.loads(ENVELOPE).value),
        cbor2.dumps(cbor2.CBORTag(61, cbor2.loads(ENVELOPE))),
        b"\x00" * (ENVELOPE_BYTES_MAX + 1),
    ],
    ids=["trailing bytes", "untagged", "tag 61", "oversized"],
)
def test_a_malformed_envelope_is_refused(envelope: bytes) -> None:
    assert refused(envelope).reason is RefusalReason.MALFORMED


def test_alg_in_the_unprotected_header_is_malformed() -> None:
    from tests.ledger.test_cose import craft

    payload = encode_ticket(sample_ticket())
    envelope = craft(det_cbor({4: BROKER.kid}), {1: -8}, payload, key=BROKER)
    assert refused(envelope).reason is RefusalReason.MALFORMED


@settings(max_examples=300)
@given(st.data())
def test_any_single_flipped_byte_is_refused_with_a_reason(data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(ENVELOPE) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = ENVELOPE[:at] + bytes([ENVELOPE[at] ^ flip]) + ENVELOPE[at + 1 :]
    assert refused(tampered).reason in (
        RefusalReason.MALFORMED,
        RefusalReason.BAD_SIGNATURE,
        RefusalReason.UNKNOWN_KEY,
    )


# -- helpers -------------------------------------------------------------------------------


def test_open_ticket_checks_the_signature_but_not_time_or_node() -> None:
    assert open_ticket(ENVELOPE, BROKER.public, BROKER.kid) == sample_ticket()
    with pytest.raises(TicketRefused):
        open_ticket(ENVELOPE, Key.from_seed(ORIGIN, 2).public, BROKER.kid)


def test_peek_reads_the_request_id_of_anything_or_none() -> None:
    assert peek_request_id(ENVELOPE) == REQUEST_ID
    assert peek_request_id(b"\xff") is None
    assert peek_request_id(cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"\xa1\x07\x01", b""]))) is None


def test_the_ticket_digest_is_sha256_of_the_envelope() -> None:
    assert ticket_digest(ENVELOPE) == hashlib.sha256(ENVELOPE).digest()


def test_a_refusal_survives_pickling_and_is_a_ledger_error() -> None:
    error = pickle.loads(pickle.dumps(TicketRefused(RefusalReason.REPLAY, "again", REQUEST_ID)))
    assert (error.reason, error.detail, error.request_id) == (
        RefusalReason.REPLAY,
        "again",
        REQUEST_ID,
    )
    assert str(error) == "ticket refused (replay): again"


def test_decode_raises_envelope_errors() -> None:
    with pytest.raises(EnvelopeError):
        decode_ticket(b"\xa0")
    assert (
        decode_ticket(encode_ticket(replace(sample_ticket(), input_sha256=None))).input_sha256
        is None
    )
