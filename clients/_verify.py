"""Client-side verification of a broker's signed ledger, shared by both clients.

Owns: what a client trusts about a broker's log, and how it decides to trust more
(docs/ledger-format.md, "Client-side verification", rules C1-C6).

- The trust state: per broker (keyed by the log's origin), the verifier key it pinned and the
  last checkpoint it verified, in a small JSON file (`<trust dir>/<sha256(origin)[:32]>.json`,
  default `~/.orbitq/trust`, or `ORBITQ_TRUST_DIR`; written atomically, mode 0600).
- The key: the one given as `ledger_key=` ("pinned"), else the broker's own key pinned on
  first use ("tofu": trust on first use, weaker: a broker that is already lying on the first
  contact is believed; it is logged as a warning).
- A new checkpoint is trusted only if its note verifies with the key (L15) and its tree is an
  extension of the last verified one: same root at the same size, or a consistency proof from
  the verified size (L9). A smaller tree, another root at a verified size, a failing proof, a
  bad signature or another key raise `BrokerIntegrityError` subclasses that say what the
  broker did.
- Proofs (an entry in the newest verified checkpoint) and the whole-log check (every entry
  served, rehashed into the signed root; a mismatch is located with consistency proofs).
- Usage receipts (C6): a request's receipt verified under its node's enrolled key, both of
  their entries proved in a verified checkpoint, and every settling transfer proved to carry
  the receipt's digest and to post no more than the receipt backs.

Sans-IO: each operation is a generator ("flow") that yields the calls it needs (and `Sleep`s)
and receives their responses, so the blocking and the asyncio client run the same logic with
their own transport (see `_async_client.py`). Pure except the state file.

Does not own: transport, retries, or the cryptography (orbitq.ledger).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

from orbitq.clients import _calls
from orbitq.clients._calls import Call
from orbitq.clients.errors import (
    BrokerIntegrityError,
    BrokerKeyChangedError,
    CheckpointSignatureError,
    ConfigurationError,
    EntryVerificationError,
    FailedPreconditionError,
    HistoryRewrittenError,
)
from orbitq.clients.ids import IdLike, format_id, parse_id
from orbitq.clients.models import (
    Amounts,
    Checkpoint,
    LedgerEntry,
    LogVerification,
    NodeKeyRecord,
    Proof,
    ReceiptRecord,
    VerifiedReceipt,
)
from orbitq.ledger.checkpoint import Checkpoint as SignedCheckpoint
from orbitq.ledger.checkpoint import parse_checkpoint_body, verify_checkpoint
from orbitq.ledger.errors import LedgerIntegrityError
from orbitq.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    Frontier,
    leaf_hash,
    node_hash,
    root_from_subtrees,
    verify_consistency,
    verify_inclusion,
)
from orbitq.ledger.note import Verifier, key_id, parse_note, parse_verifier_key
from orbitq.ledger.receipts import (
    Receipt,
    ReceiptError,
    charge_of,
    core_seconds_problem,
    open_receipt,
    receipt_digest,
)
from orbitq.v1 import ledger_pb2, request_pb2

log = logging.getLogger("orbitq.clients.ledger")

T = TypeVar("T")

TRUST_DIR_ENV = "ORBITQ_TRUST_DIR"
TRUST_FORMAT = "orbitq-trust/1"
STATE_FILE_MODE = 0o600
STATE_DIR_MODE = 0o700
# A state file holds one checkpoint note (< 256 KiB by L17) and a few fields.
STATE_BYTES_MAX = 512 * 1024
# Entries per GetEntries page when the client pages through the log (the broker's maximum).
ENTRIES_PAGE_ROWS = 1000
# How long `prove_*` waits for a checkpoint that covers a just-committed entry, and how often
# it asks again (brokers sign a checkpoint every few seconds, and right after a burst).
PROVE_WAIT_SECONDS = 5.0
PROVE_POLL_SECONDS = 0.25
# The most settling transfers a receipt may have (one per kind is the rule; a few more leave
# room for a settlement made in parts); each is proved, so the bound bounds the calls.
SETTLEMENT_TRANSFERS_MAX = 16

PINNED = "pinned"
TOFU = "tofu"


@dataclass(frozen=True)
class Sleep:
    """A flow asks its driver to wait before the next call."""

    seconds: float


Step = Call[Any] | Sleep
Flow = Generator[Step, Any, T]
# Called with (entries verified, entries in all) as verify_log goes.
ProgressCallback = Callable[[int, int], None]


def default_trust_dir() -> Path:
    configured = os.environ.get(TRUST_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".orbitq" / "trust"


# -- the trust state -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustState:
    """What a client trusts about one broker's log."""

    origin: str
    verifier_key: str
    key_source: str
    size: int
    root_hash: bytes
    note: str


class TrustStore:
    """C2: the trust states of one client, one small JSON file per origin."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, origin: str) -> Path:
        return self.directory / f"{sha256(origin.encode()).hexdigest()[:32]}.json"

    def load(self, origin: str) -> TrustState | None:
        path = self.path_for(origin)
        try:
            with path.open("rb") as handle:
                raw = handle.read(STATE_BYTES_MAX + 1)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise ConfigurationError(f"cannot read the trust state {path}: {error}") from None
        try:
            if len(raw) > STATE_BYTES_MAX:
                raise ValueError(f"larger than {STATE_BYTES_MAX} bytes")
            data = json.loads(raw)
            if data["format"] != TRUST_FORMAT:
                raise ValueError(f"format {data['format']!r} is not {TRUST_FORMAT!r}")
            state = TrustState(
                origin=str(data["origin"]),
                verifier_key=str(data["verifier_key"]),
                key_source=str(data["key_source"]),
                size=int(data["size"]),
                root_hash=base64.b64decode(str(data["root_hash"]), validate=True),
                note=str(data["note"]),
            )
            parse_verifier_key(state.verifier_key)
            if state.origin != origin or state.key_source not in (PINNED, TOFU):
                raise ValueError("it belongs to another origin, or names no key source")
            if len(state.root_hash) != HASH_SIZE or state.size < 0:
                raise ValueError("its checkpoint is malformed")
        except (ValueError, KeyError, TypeError, LedgerIntegrityError) as error:
            raise ConfigurationError(
                f"the trust state {path} is unreadable ({error}); if you cannot restore it, "
                "delete it to trust this broker anew (on first use, or with a pinned key)"
            ) from None
        return state

    def save(self, state: TrustState) -> None:
        """Write atomically (temporary file, fsync, rename), mode 0600; never moves back to a
        smaller checkpoint of the same key that another client process saved meanwhile."""
        current = self._load_quietly(state.origin)
        if (
            current is not None
            and current.verifier_key == state.verifier_key
            and current.size > state.size
        ):
            return
        self.directory.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
        path = self.path_for(state.origin)
        document = {
            "format": TRUST_FORMAT,
            "origin": state.origin,
            "verifier_key": state.verifier_key,
            "key_source": state.key_source,
            "size": state.size,
            "root_hash": base64.b64encode(state.root_hash).decode("ascii"),
            "note": state.note,
            "verified_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STATE_FILE_MODE)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, STATE_FILE_MODE)  # the umask may have narrowed it; make it exact
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(self.directory)

    def _load_quietly(self, origin: str) -> TrustState | None:
        try:
            return self.load(origin)
        except ConfigurationError:
            return None


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# -- verification flows --------------------------------------------------------------------------


class LedgerVerifier:
    """The ledger verification of one client: its pinned key, trust states and flows."""

    def __init__(self, ledger_key: str | None, trust_dir: str | Path | None) -> None:
        try:
            self._pinned = parse_verifier_key(ledger_key) if ledger_key else None
        except LedgerIntegrityError as error:
            raise ConfigurationError(f"ledger_key is not a verifier key: {error}") from None
        self.store = TrustStore(Path(trust_dir) if trust_dir else default_trust_dir())
        self._states: dict[str, TrustState] = {}

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint(self, fresh: bool) -> Flow[Checkpoint]:
        """The broker's latest checkpoint, verified and made the newest trusted one."""
        response = yield _calls.get_checkpoint(fresh)
        return (yield from self.accept(response.checkpoint))

    def accept(self, message: ledger_pb2.Checkpoint) -> Flow[Checkpoint]:
        """Verify a checkpoint the broker presented (signature, then consistency) and trust it."""
        origin = self._claimed_origin(message.note)
        state = self._state(origin)
        verifier, source = yield from self._key(origin, state)
        signed = yield from self._verify_note(message.note, verifier, source, origin)
        return (yield from self._extend(signed, state, verifier, source))

    def _claimed_origin(self, note: str) -> str:
        """The origin to look the trust state up by: the pinned key's name, or (before any key
        is known) the origin line of the note, which is verified right after."""
        if self._pinned is not None:
            return self._pinned.name
        try:
            return parse_checkpoint_body(parse_note(note).text).origin
        except LedgerIntegrityError as error:
            raise BrokerIntegrityError(
                "?", f"the broker presented a malformed checkpoint: {error}"
            ) from error

    def _state(self, origin: str) -> TrustState | None:
        state = self._states.get(origin)
        if state is None:
            state = self.store.load(origin)
            if state is not None:
                self._states[origin] = state
        return state

    def _key(self, origin: str, state: TrustState | None) -> Flow[tuple[Verifier, str]]:
        """C1: the pinned key, else the key pinned for this origin before, else (TOFU) the
        broker's own key, pinned now and logged."""
        if self._pinned is not None:
            if state is not None and state.verifier_key != self._pinned.verifier_key():
                raise ConfigurationError(
                    f"the trust state {self.store.path_for(origin)} of {origin} was verified "
                    f"with key {state.verifier_key}, but ledger_key is "
                    f"{self._pinned.verifier_key()}: if the operator rotated the key, delete "
                    "that file to trust the new key"
                )
            return self._pinned, PINNED
        if state is not None:
            return parse_verifier_key(state.verifier_key), state.key_source
        key = yield _calls.get_public_key()
        try:
            verifier = parse_verifier_key(key.verifier_key)
        except LedgerIntegrityError as error:
            raise BrokerIntegrityError(
                origin, f"broker {origin} presented a malformed verifier key: {error}"
            ) from error
        if verifier.name != origin or key.origin != origin:
            raise BrokerIntegrityError(
                origin,
                f"broker presented a checkpoint of origin {origin}, but its key "
                f"{key.verifier_key} is for origin {key.origin}",
            )
        log.warning(
            "broker %s: pinned its ledger key %s on first use (TOFU); pass ledger_key= (or "
            "--vkey) to pin the key the operator published instead",
            origin,
            key.verifier_key,
        )
        return verifier, TOFU

    def _verify_note(
        self, note: str, verifier: Verifier, source: str, origin: str
    ) -> Flow[SignedCheckpoint]:
        try:
            return verify_checkpoint(note, verifier)
        except LedgerIntegrityError as error:
            failure = error
        key = yield _calls.get_public_key()
        pinned_by = "on first use" if source == TOFU else "by ledger_key"
        if key.verifier_key != verifier.verifier_key():
            raise BrokerKeyChangedError(
                origin,
                f"broker {origin} now presents the signing key {key.verifier_key}, but "
                f"{verifier.verifier_key()} was pinned for it ({pinned_by}): its checkpoints "
                "are not trusted; if the operator rotated the key, confirm the new one out of "
                f"band, pin it, and delete {self.store.path_for(origin)}",
            ) from failure
        raise CheckpointSignatureError(
            origin,
            f"broker {origin} presented a checkpoint that does not verify with its key "
            f"{verifier.verifier_key()} (pinned {pinned_by}): {failure}",
        ) from failure

    def _extend(
        self,
        signed: SignedCheckpoint,
        state: TrustState | None,
        verifier: Verifier,
        source: str,
    ) -> Flow[Checkpoint]:
        """C3 (L9, L15): trust `signed` only if it extends the last verified checkpoint."""
        origin = signed.origin
        previous = state.size if state is not None else 0
        if state is not None:
            if signed.size < state.size:
                raise HistoryRewrittenError(
                    origin,
                    f"broker {origin} presented checkpoint {signed.size}, smaller than the "
                    f"verified checkpoint {state.size}: a log never shrinks, so history was "
                    "rewritten",
                )
            if signed.size == state.size:
                if signed.root_hash != state.root_hash:
                    raise HistoryRewrittenError(
                        origin,
                        f"broker {origin} presented checkpoint {signed.size} with root "
                        f"{signed.root_hash.hex()}, but this client verified root "
                        f"{state.root_hash.hex()} for that size: the log forked; keep both "
                        f"signed notes as evidence (the verified one is in "
                        f"{self.store.path_for(origin)})",
                    )
            elif state.size == 0:
                if state.root_hash != EMPTY_ROOT:
                    raise HistoryRewrittenError(
                        origin, f"the verified empty tree of {origin} has a root that is not empty"
                    )
            else:
                response = yield _calls.get_consistency_proof(state.size, signed.size)
                try:
                    verify_consistency(
                        state.size,
                        signed.size,
                        list(response.hashes),
                        state.root_hash,
                        signed.root_hash,
                    )
                except LedgerIntegrityError as error:
                    raise HistoryRewrittenError(
                        origin,
                        f"broker {origin} presented checkpoint {signed.size} that is not an "
                        f"extension of the verified checkpoint {state.size}: history was "
                        f"rewritten ({error})",
                    ) from error
        vkey = verifier.verifier_key()
        if state is None or signed.size > state.size or state.key_source != source:
            new_state = TrustState(origin, vkey, source, signed.size, signed.root_hash, signed.note)
            self.store.save(new_state)
            self._states[origin] = new_state
        return Checkpoint(
            origin=origin,
            size=signed.size,
            root_hash=signed.root_hash,
            note=signed.note,
            verifier_key=vkey,
            key_source=source,
            previous_size=previous,
        )

    # -- proofs ------------------------------------------------------------------------------

    def prove(
        self, index: int | None, transfer_id: IdLike | None, wait_seconds: float
    ) -> Flow[Proof]:
        """C4 (L8): the entry (by index, or the entry of a transfer) in the broker's latest
        checkpoint, which is verified (and trusted) first."""
        wanted_id = format_id(parse_id(transfer_id)) if transfer_id is not None else None
        polls_left = max(0, int(wait_seconds / PROVE_POLL_SECONDS))
        response: ledger_pb2.GetInclusionProofResponse | None = None
        while response is None:
            try:
                response = yield _calls.get_inclusion_proof(index, transfer_id, 0)
            except FailedPreconditionError:
                # The entry is committed but not yet under a checkpoint: the next one covers it.
                if polls_left == 0:
                    raise
                polls_left -= 1
                yield Sleep(PROVE_POLL_SECONDS)
        checkpoint = yield from self.accept(response.checkpoint)
        return self._proof(response, checkpoint, index, wanted_id)

    def _proof(
        self,
        response: ledger_pb2.GetInclusionProofResponse,
        checkpoint: Checkpoint,
        index: int | None,
        wanted_id: str | None,
    ) -> Proof:
        origin = checkpoint.origin
        position = response.index
        what = f"broker {origin}'s proof of entry {position}"
        if index is not None and position != index:
            raise EntryVerificationError(origin, index, f"{what} was sent for entry {index}")
        if response.tree_size != checkpoint.size:
            raise EntryVerificationError(
                origin,
                position,
                f"{what} is for tree size {response.tree_size}, not for the checkpoint "
                f"{checkpoint.size} sent with it",
            )
        leaf = leaf_hash(response.entry)
        try:
            verify_inclusion(
                leaf, position, checkpoint.size, list(response.hashes), checkpoint.root_hash
            )
        except LedgerIntegrityError as error:
            raise EntryVerificationError(
                origin,
                position,
                f"{what} does not verify against its signed checkpoint {checkpoint.size}: {error}",
            ) from error
        try:
            entry = LedgerEntry.from_bytes(response.entry)
        except ValueError as error:
            raise EntryVerificationError(origin, position, f"{what}: {error}") from None
        if entry.index != position:
            raise EntryVerificationError(
                origin, position, f"{what}: the entry claims index {entry.index}"
            )
        if wanted_id is not None and (entry.transfer is None or entry.transfer.id != wanted_id):
            recorded = entry.transfer.id if entry.transfer is not None else entry.type
            raise EntryVerificationError(
                origin,
                position,
                f"{what} was sent for transfer {wanted_id}, but the entry records {recorded}",
            )
        return Proof(position, entry, leaf, tuple(response.hashes), checkpoint)

    # -- entries and the whole log -----------------------------------------------------------

    def entries(self, start: int, end: int) -> Flow[list[LedgerEntry]]:
        """Entries [start, end) decoded (end 0 = the latest checkpoint's size); not verified
        against a checkpoint (`verify_log` does that)."""
        found: list[LedgerEntry] = []
        position = start
        while True:
            response = yield _calls.get_entries(position, end, ENTRIES_PAGE_ROWS)
            for item in response.entries:
                found.append(_served_entry(item, position, "?"))
                position += 1
            if response.next_start == 0:
                return found
            if response.next_start != position:
                raise EntryVerificationError(
                    "?",
                    position,
                    f"the broker's page of entries ends at {position} but says the next "
                    f"starts at {response.next_start}",
                )

    def verify_log(self, progress: ProgressCallback | None) -> Flow[LogVerification]:
        """C4: verify the latest checkpoint, then every entry it covers: each entry served in
        order with its own index and increasing timestamps, all hashing to the signed root."""
        checkpoint = yield from self.checkpoint(False)
        origin, size = checkpoint.origin, checkpoint.size
        frontier = Frontier.empty()
        leaves = bytearray()  # 32 bytes per entry: to locate a bad entry if the root differs
        last_ts = 0
        while frontier.size < size:
            position = frontier.size
            response = yield _calls.get_entries(position, size, ENTRIES_PAGE_ROWS)
            if not response.entries:
                raise EntryVerificationError(
                    origin,
                    position,
                    f"entry {position}: broker {origin} served none, though its checkpoint "
                    f"{size} covers it",
                )
            for item in response.entries:
                entry = _served_entry(item, frontier.size, origin)
                if entry.timestamp_ns <= last_ts:
                    raise EntryVerificationError(
                        origin,
                        entry.index,
                        f"entry {entry.index}: timestamp {entry.timestamp_ns} is not after the "
                        f"previous entry's {last_ts}",
                    )
                last_ts = entry.timestamp_ns
                leaf = leaf_hash(item.data)
                leaves += leaf
                frontier.append(leaf)
                if frontier.size > size:
                    raise EntryVerificationError(
                        origin, size, f"broker {origin} served entries beyond its checkpoint {size}"
                    )
            if progress is not None:
                progress(frontier.size, size)
        if frontier.root() != checkpoint.root_hash:
            bad = yield from self._locate(bytes(leaves), checkpoint)
            raise EntryVerificationError(
                origin,
                bad,
                f"entry {bad}: the entries broker {origin} served do not hash to the root of its "
                f"signed checkpoint {size}; entry {bad} is the first that differs from the "
                "signed tree (located with the broker's consistency proofs)",
            )
        return LogVerification(size, checkpoint)

    def _locate(self, leaves: bytes, checkpoint: Checkpoint) -> Flow[int]:
        """The first served entry outside the signed tree: the largest prefix whose recomputed
        root the broker can prove consistent with the checkpoint, by binary search (L9)."""
        blocks: dict[tuple[int, int], bytes] = {}

        def block(node: tuple[int, int]) -> bytes:
            level, index = node
            if level == 0:
                return leaves[index * HASH_SIZE : (index + 1) * HASH_SIZE]
            found = blocks.get(node)
            if found is None:
                found = node_hash(block((level - 1, 2 * index)), block((level - 1, 2 * index + 1)))
                blocks[node] = found
            return found

        good, bad = 0, checkpoint.size  # prefix `good` matches the signed tree; `bad` does not
        while bad - good > 1:
            middle = (good + bad) // 2
            response = yield _calls.get_consistency_proof(middle, checkpoint.size)
            try:
                verify_consistency(
                    middle,
                    checkpoint.size,
                    list(response.hashes),
                    root_from_subtrees(middle, block),
                    checkpoint.root_hash,
                )
                good = middle
            except LedgerIntegrityError:
                bad = middle
        return good

    # -- usage receipts ----------------------------------------------------------------------

    def verify_receipt(self, request_id: str, wait_seconds: float) -> Flow[VerifiedReceipt]:
        """C6: the request's usage receipt, verified (see VerifiedReceipt)."""
        wanted = _request_id(request_id)
        evidence = yield _get_evidence(wanted)
        if not evidence.receipt:
            raise FailedPreconditionError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"request {wanted} has no usage receipt yet (it is {_state(evidence)})",
            )
        found = yield from self.prove(evidence.receipt_entry_index, None, wait_seconds)
        recorded = _receipt_entry(found, wanted, evidence.receipt)
        key_proof = yield from self.prove(evidence.node_key_entry_index, None, wait_seconds)
        enrolled = _node_key_entry(key_proof, recorded, found.index, evidence.node_public_key)
        receipt = _opened(found, recorded, enrolled, key_proof.index)
        origin = found.checkpoint.origin
        digest = receipt_digest(evidence.receipt)
        if evidence.ticket and sha256(evidence.ticket).digest() != receipt.ticket_sha256:
            raise BrokerIntegrityError(
                origin,
                f"broker {origin} presents a ticket for request {wanted} whose SHA-256 is not "
                "the ticket digest its node's receipt names",
            )
        if evidence.request.receipt_digest and evidence.request.receipt_digest != digest:
            raise BrokerIntegrityError(
                origin,
                f"broker {origin} says request {wanted} settled against receipt "
                f"{evidence.request.receipt_digest.hex()}, but serves receipt {digest.hex()}",
            )
        ids = list(dict.fromkeys(evidence.settlement_transfer_ids))
        if len(ids) > SETTLEMENT_TRANSFERS_MAX:
            raise BrokerIntegrityError(
                origin,
                f"broker {origin} names {len(ids)} settling transfers for request {wanted}; a "
                f"receipt settles at most {SETTLEMENT_TRANSFERS_MAX}",
            )
        settlements: list[Proof] = []
        for transfer_id in ids:
            settlements.append((yield from self.prove(None, transfer_id, wait_seconds)))
        settled = _settled(settlements, receipt, digest, found.index, origin)
        newest = max([found, key_proof, *settlements], key=lambda proof: proof.checkpoint.size)
        return _verified(
            receipt,
            recorded,
            enrolled,
            found.index,
            key_proof.index,
            settlements,
            settled,
            newest.checkpoint,
        )


def _get_evidence(request_id: str) -> Call[request_pb2.GetEvidenceResponse]:
    return Call(
        "request",
        "GetEvidence",
        request_pb2.GetEvidenceRequest(id=request_id),
        _response,
        idempotent=True,
    )


def _response(response: request_pb2.GetEvidenceResponse) -> request_pb2.GetEvidenceResponse:
    return response


def _request_id(request_id: str) -> str:
    wanted = request_id.strip().lower()
    if len(wanted) != 32 or any(char not in "0123456789abcdef" for char in wanted):
        raise ValueError(f"request id {request_id!r} is not 32 hex digits")
    return wanted


def _state(evidence: request_pb2.GetEvidenceResponse) -> str:
    number = evidence.request.state
    names = request_pb2.RequestState
    name = names.Name(number) if number in names.values() else f"state {number}"
    return name.removeprefix("REQUEST_STATE_").lower()


def _receipt_entry(proof: Proof, wanted: str, envelope: bytes) -> ReceiptRecord:
    """The proved entry records this very receipt for this request."""
    recorded = proof.entry.receipt
    origin = proof.checkpoint.origin
    if recorded is None:
        raise EntryVerificationError(
            origin,
            proof.index,
            f"entry {proof.index}: broker {origin} named it as request {wanted}'s receipt, but "
            f"it records {proof.entry.type}",
        )
    if recorded.request_id != wanted or recorded.receipt != envelope:
        raise EntryVerificationError(
            origin,
            proof.index,
            f"entry {proof.index}: it records a receipt for request {recorded.request_id}, not "
            f"the receipt broker {origin} serves for request {wanted}",
        )
    return recorded


def _node_key_entry(
    proof: Proof, recorded: ReceiptRecord, receipt_index: int, public_key: bytes
) -> NodeKeyRecord:
    """The proved entry enrolls the receipt's node's key, before the receipt (V16)."""
    enrolled = proof.entry.node_key
    origin = proof.checkpoint.origin
    what = f"entry {proof.index}: broker {origin} named it as the key of node {recorded.node}"
    if enrolled is None:
        raise EntryVerificationError(
            origin, proof.index, f"{what}, but it records {proof.entry.type}"
        )
    if enrolled.node != recorded.node:
        raise EntryVerificationError(
            origin, proof.index, f"{what}, but it enrolls a key of node {enrolled.node}"
        )
    if enrolled.public_key != public_key:
        raise EntryVerificationError(
            origin, proof.index, f"{what}, but it enrolls another key than the one served"
        )
    if enrolled.key_id != key_id(enrolled.node, enrolled.public_key):
        raise EntryVerificationError(
            origin,
            proof.index,
            f"{what}, but its key id is not the key's (docs/agent-format.md S2)",
        )
    if proof.index >= receipt_index:
        raise EntryVerificationError(
            origin,
            proof.index,
            f"{what}, but it comes after the receipt's entry {receipt_index}",
        )
    return enrolled


def _opened(
    proof: Proof, recorded: ReceiptRecord, enrolled: NodeKeyRecord, key_index: int
) -> Receipt:
    """The receipt verifies under the node key (R7) and says what its entry says (V16)."""
    origin = proof.checkpoint.origin
    what = f"entry {proof.index}: the receipt of request {recorded.request_id}"
    try:
        receipt = open_receipt(recorded.receipt, enrolled.public_key, enrolled.key_id)
    except ReceiptError as error:
        raise EntryVerificationError(
            origin,
            proof.index,
            f"{what} does not verify under node {recorded.node}'s key of entry {key_index}: "
            f"{error}",
        ) from error
    if (receipt.request_id, receipt.node) != (recorded.request_id, recorded.node):
        raise EntryVerificationError(
            origin,
            proof.index,
            f"{what} is signed for request {receipt.request_id} of node {receipt.node}",
        )
    problem = core_seconds_problem(receipt, enrolled.fuel_per_core_second)
    if problem is not None:
        raise EntryVerificationError(origin, proof.index, f"{what} {problem}")
    return receipt


def _settled(
    settlements: list[Proof], receipt: Receipt, digest: bytes, receipt_index: int, origin: str
) -> Amounts:
    """V17: each settling transfer carries the digest, comes after the receipt, succeeded; per
    kind they post at most the receipt's charge."""
    totals = dict.fromkeys(("cpu", "storage", "link"), 0)
    for proof in settlements:
        transfer = proof.entry.transfer
        assert transfer is not None  # prove() checked the entry records the transfer
        problem = None
        if transfer.user_data != digest:
            problem = "does not carry the receipt's digest as user_data"
        elif transfer.code != "settle" or proof.entry.result != "ok":
            problem = f"is a {transfer.code} transfer with result {proof.entry.result}"
        elif proof.index <= receipt_index:
            problem = f"comes before the receipt's entry {receipt_index}"
        if problem is not None:
            raise EntryVerificationError(
                origin,
                proof.index,
                f"entry {proof.index}: settling transfer {transfer.id} of request "
                f"{receipt.request_id} {problem}",
            )
        totals[transfer.kind] = totals.get(transfer.kind, 0) + transfer.amount
    charge = charge_of(receipt)
    for kind, backed in (("cpu", charge.cpu), ("storage", charge.storage), ("link", charge.link)):
        if totals[kind] > backed:
            raise BrokerIntegrityError(
                origin,
                f"broker {origin} settled {totals[kind]} {kind} against the receipt of request "
                f"{receipt.request_id}, which backs {backed}",
            )
    return Amounts(totals["cpu"], totals["storage"], totals["link"])


def _verified(
    receipt: Receipt,
    recorded: ReceiptRecord,
    enrolled: NodeKeyRecord,
    receipt_index: int,
    key_index: int,
    settlements: list[Proof],
    settled: Amounts,
    checkpoint: Checkpoint,
) -> VerifiedReceipt:
    charge = charge_of(receipt)
    return VerifiedReceipt(
        request_id=receipt.request_id,
        node=receipt.node,
        outcome=receipt.outcome.label,
        exit_code=receipt.exit_code,
        fuel=receipt.fuel,
        cpu_core_seconds=receipt.cpu_core_seconds,
        storage_mb_seconds=receipt.storage_mb_seconds,
        bytes_downlinked=receipt.bytes_downlinked,
        link_seconds=receipt.link_seconds,
        uplink_seconds=receipt.uplink_seconds,
        started_at=_seconds(receipt.start),
        ended_at=_seconds(receipt.end),
        issued_at=_seconds(receipt.issued_at),
        result_sha256=receipt.result_sha256,
        result_bytes=receipt.result_bytes,
        runtime=receipt.runtime,
        ticket_sha256=receipt.ticket_sha256,
        charge=Amounts(charge.cpu, charge.storage, charge.link),
        settled=settled,
        digest=recorded.digest,
        receipt=recorded.receipt,
        node_public_key=enrolled.public_key,
        fuel_per_core_second=enrolled.fuel_per_core_second,
        node_key_entry=key_index,
        receipt_entry=receipt_index,
        settlements=tuple(
            proof.entry.transfer for proof in settlements if proof.entry.transfer is not None
        ),
        checkpoint=checkpoint,
    )


def _seconds(value: int) -> datetime:
    return datetime.fromtimestamp(min(value, _SECONDS_MAX), UTC)


# datetime's largest year is 9999: later NumericDates are shown as its end.
_SECONDS_MAX = 253_402_300_799


def _served_entry(item: ledger_pb2.LogEntry, position: int, origin: str) -> LedgerEntry:
    if item.index != position:
        raise EntryVerificationError(
            origin, position, f"entry {position}: the broker served index {item.index} instead"
        )
    try:
        entry = LedgerEntry.from_bytes(item.data)
    except (ValueError, DecodeError) as error:
        raise EntryVerificationError(origin, position, f"entry {position}: {error}") from None
    if entry.index != position:
        raise EntryVerificationError(
            origin, position, f"entry {position}: the entry claims index {entry.index}"
        )
    return entry
