"""The exceptions raised when ledger data fails a check.

Owns: one root, `LedgerIntegrityError`, and one subclass per kind of failure a verifier can
report. Every check in `orbitq.ledger` that finds bad data (a proof, a note, a checkpoint, a key
string, a hash of the wrong size) raises one of these; catching `LedgerIntegrityError` catches
them all. Messages name what failed and what to do about it, because they reach operators and
tenants through the CLI and gRPC statuses.

Does not own: arguments a caller got wrong in a way no data could cause (a negative tree size
passed to a proof *generator*, signing with no signer); those raise `ValueError`. Nor the
mapping of these errors to gRPC status codes (orbitq.services).

    LedgerIntegrityError
    ├── HashSizeError            a hash is not 32 bytes
    ├── InclusionProofError      an inclusion proof does not prove what it claims
    ├── ConsistencyProofError    a consistency proof does not link the two tree heads
    ├── KeyFormatError           a verifier or signer key string is malformed
    ├── NoteFormatError          a signed note breaks the signed-note syntax or its limits
    ├── NoteSignatureError       a signature by a known key does not verify
    ├── UnknownKeyError          no signature by any of the expected keys
    ├── CheckpointFormatError    a checkpoint body breaks the tlog-checkpoint syntax
    ├── OriginMismatchError      a checkpoint's origin is not its signing key's name
    │
    ├── EnvelopeError            a COSE_Sign1 envelope is refused (.reason; orbitq.ledger.cose)
    │   └── ReceiptError             ... and it is a usage receipt (orbitq.ledger.receipts)
    ├── TicketRefused            a ticket an agent must not run (.reason; orbitq.ledger.tickets)
    │
    │   found by the offline audit (orbitq.ledger.audit, rules V1..V20), each naming the culprit:
    ├── EntryIntegrityError      a stored entry, or a row derived from it, is wrong (.index)
    ├── CheckpointIntegrityError a stored checkpoint does not match the log (.size)
    ├── HeadIntegrityError       the head row does not match the log or its checkpoints
    ├── AccountIntegrityError    an account row does not match the log (.account_id)
    │   └── BalanceMismatchError     its stored balances differ from the replay
    └── InvariantViolationError  a ledger invariant fails on the stored balances, or (raised
                                 by the write path before a group commits) on what a group
                                 would store: a programmer error that halts the writer
"""

from __future__ import annotations

__all__ = [
    "AccountIntegrityError",
    "BalanceMismatchError",
    "CheckpointFormatError",
    "CheckpointIntegrityError",
    "ConsistencyProofError",
    "EntryIntegrityError",
    "HashSizeError",
    "HeadIntegrityError",
    "InclusionProofError",
    "InvariantViolationError",
    "KeyFormatError",
    "LedgerIntegrityError",
    "NoteFormatError",
    "NoteSignatureError",
    "OriginMismatchError",
    "UnknownKeyError",
]


class LedgerIntegrityError(Exception):
    """Ledger data failed a check: the data is wrong, not the program."""


class HashSizeError(LedgerIntegrityError):
    """A leaf hash, node hash, root or proof hash is not exactly 32 bytes (L2, L8, L9)."""


class InclusionProofError(LedgerIntegrityError):
    """An inclusion proof does not show the leaf at that index in the tree with that root (L8)."""


class ConsistencyProofError(LedgerIntegrityError):
    """A consistency proof does not show the first tree head is a prefix of the second (L9)."""


class KeyFormatError(LedgerIntegrityError):
    """A verifier key (`name+id+key`) or signer key (`PRIVATE+KEY+...`) is malformed (L13)."""


class NoteFormatError(LedgerIntegrityError):
    """A signed note is not valid signed-note syntax, or exceeds a limit (L11, L12, L17)."""


class NoteSignatureError(LedgerIntegrityError):
    """A signature by a known key (name and key id both match) does not verify (L14)."""


class UnknownKeyError(LedgerIntegrityError):
    """A note carries no signature by any of the keys the verifier was given (L14)."""


class CheckpointFormatError(LedgerIntegrityError):
    """A checkpoint body is not `<origin>\\n<size>\\n<base64 root>\\n[extensions]` (L10)."""


class OriginMismatchError(LedgerIntegrityError):
    """A checkpoint's origin line differs from the name of the key that signed it (L15)."""


class EntryIntegrityError(LedgerIntegrityError):
    """A stored entry, or a row derived from it, is not what the log says (V1-V10).

    `index` is the position of the first bad entry in the log; `detail` says what differs.
    """

    def __init__(self, index: int, detail: str) -> None:
        super().__init__(f"entry {index}: {detail}")
        self.index = index
        self.detail = detail

    def __reduce__(self) -> tuple[type[EntryIntegrityError], tuple[int, str]]:
        return (type(self), (self.index, self.detail))


class CheckpointIntegrityError(LedgerIntegrityError):
    """A stored checkpoint is unsigned, mis-signed, or does not match the stored log (V6, V7).

    `size` is the checkpoint's tree size; `detail` says what differs.
    """

    def __init__(self, size: int, detail: str) -> None:
        super().__init__(f"checkpoint {size}: {detail}")
        self.size = size
        self.detail = detail

    def __reduce__(self) -> tuple[type[CheckpointIntegrityError], tuple[int, str]]:
        return (type(self), (self.size, self.detail))


class HeadIntegrityError(LedgerIntegrityError):
    """The head row is missing, or a column of it differs from what the log and its stored
    checkpoints say (V20): a counter was changed, or the newest checkpoint was deleted.

    `column` names the head column (or "row"); `detail` says what differs.
    """

    def __init__(self, column: str, detail: str) -> None:
        super().__init__(f"head row: {detail}")
        self.column = column
        self.detail = detail

    def __reduce__(self) -> tuple[type[HeadIntegrityError], tuple[str, str]]:
        return (type(self), (self.column, self.detail))


class AccountIntegrityError(LedgerIntegrityError):
    """An account row differs from the account its creation entry recorded (V11).

    `account_id` names the account, `owner` says whose it is ("acme cpu", "treasury link").
    """

    def __init__(self, account_id: int, owner: str, detail: str) -> None:
        super().__init__(f"account {account_id} ({owner}): {detail}")
        self.account_id = account_id
        self.owner = owner
        self.detail = detail

    def __reduce__(self) -> tuple[type[AccountIntegrityError], tuple[int, str, str]]:
        return (type(self), (self.account_id, self.owner, self.detail))


class BalanceMismatchError(AccountIntegrityError):
    """An account's stored balances differ from a replay of the transfers in the log (V12)."""


class InvariantViolationError(LedgerIntegrityError):
    """A ledger invariant fails (A13, V13): per kind, total debits differ from total credits,
    or a tenant account is below zero. Found by the audit on stored balances, or by the write
    path on a group before it commits (then the program is wrong: the writer halts)."""
