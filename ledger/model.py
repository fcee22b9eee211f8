"""The vocabulary of the quota ledger: kinds, codes, flags, results, limits, accounts, transfers.

Owns: the plain data types the engine, the store and the API share, and every numeric limit of
the ledger (docs/ledger-format.md, section "Accounts and transfers", rules A1-A12). Numeric
values of the enums equal those of the protobuf enums in proto/orbitq/v1/quota.proto, so
conversion is an int cast.

Does not own: rules (orbitq.ledger.engine), storage (orbitq.ledger.store) or wire formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

# A1: amounts and every balance fit a signed 64-bit column on SQLite and PostgreSQL.
AMOUNT_MAX = 2**63 - 1
# A2: transfer ids are 128-bit; 0 and 2^128-1 are reserved.
ID_MAX = 2**128 - 1
ID_BYTES = 16
# A3: account ids are 64-bit; 0 and 2^64-1 are reserved.
ACCOUNT_ID_MAX = 2**64 - 1
# A4: as TigerBeetle, a batch holds at most 8,190 transfers.
BATCH_TRANSFERS_MAX = 8190
USER_DATA_BYTES_MAX = 32
# A5: a pending transfer's timeout is a uint32 number of seconds, and timestamp + timeout must
# still fit the signed 64-bit nanosecond clock (else overflows_timeout).
TIMEOUT_SECONDS_MAX = 2**32 - 1
TIMESTAMP_MAX = 2**63 - 1
NANOS_PER_SECOND = 1_000_000_000


class Kind(IntEnum):
    """Resource kinds; each is its own ledger. Equal to orbitq.v1.ResourceKind."""

    CPU = 1
    STORAGE = 2
    LINK = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def unit(self) -> str:
        return _UNITS[self]

    @classmethod
    def parse(cls, text: str) -> Kind:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(kind.label for kind in cls)
            raise ValueError(f"unknown resource kind {text!r}: use one of {names}") from None


_UNITS = {Kind.CPU: "core-seconds", Kind.STORAGE: "MB-hours", Kind.LINK: "link-seconds"}


class SystemAccount(IntEnum):
    """The operator's accounts, one of each per kind. Equal to orbitq.v1.SystemAccount."""

    TREASURY = 1
    ESCROW = 2
    CONSUMED = 3


class Code(IntEnum):
    """Why a transfer happened. Equal to orbitq.v1.TransferCode."""

    MINT = 1
    TRANSFER = 2
    RESERVE = 3
    SETTLE = 4
    RELEASE = 5
    EXPIRE = 6
    CONSUME = 7
    REFUND = 8
    ADJUST = 9
    GRANT = 10
    LAPSE = 11
    # The share of a placed request's link tokens charged when it is cancelled after the
    # cut-off before its uplink contact (orbitq.services.requests.terms).
    CANCEL_FEE = 12


class TransferFlag(IntFlag):
    LINKED = 1
    PENDING = 2
    POST_PENDING = 4
    VOID_PENDING = 8


class AccountFlag(IntFlag):
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1


class PendingStatus(IntEnum):
    PENDING = 1
    POSTED = 2
    VOIDED = 3
    EXPIRED = 4


class Result(IntEnum):
    """Outcome of one transfer, in order of precedence. Equal to orbitq.v1.CreateTransferResult."""

    OK = 1
    LINKED_EVENT_FAILED = 2
    LINKED_EVENT_CHAIN_OPEN = 3
    TIMESTAMP_MUST_BE_ZERO = 4
    ID_MUST_NOT_BE_ZERO = 5
    ID_MUST_NOT_BE_INT_MAX = 6
    EXISTS_WITH_DIFFERENT_FLAGS = 7
    EXISTS_WITH_DIFFERENT_PENDING_ID = 8
    EXISTS_WITH_DIFFERENT_TIMEOUT = 9
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = 10
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = 11
    EXISTS_WITH_DIFFERENT_AMOUNT = 12
    EXISTS_WITH_DIFFERENT_USER_DATA = 13
    EXISTS_WITH_DIFFERENT_KIND = 14
    EXISTS_WITH_DIFFERENT_CODE = 15
    EXISTS = 16
    ID_ALREADY_FAILED = 17
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = 18
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = 19
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = 20
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = 21
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = 22
    ACCOUNTS_MUST_BE_DIFFERENT = 23
    PENDING_ID_MUST_BE_ZERO = 24
    PENDING_ID_MUST_NOT_BE_ZERO = 25
    PENDING_ID_MUST_NOT_BE_INT_MAX = 26
    PENDING_ID_MUST_BE_DIFFERENT = 27
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = 28
    AMOUNT_MUST_NOT_BE_ZERO = 29
    AMOUNT_EXCEEDS_MAXIMUM = 30
    KIND_MUST_NOT_BE_ZERO = 31
    CODE_MUST_NOT_BE_ZERO = 32
    DEBIT_ACCOUNT_NOT_FOUND = 33
    CREDIT_ACCOUNT_NOT_FOUND = 34
    ACCOUNTS_MUST_HAVE_THE_SAME_KIND = 35
    TRANSFER_MUST_HAVE_THE_SAME_KIND_AS_ACCOUNTS = 36
    PENDING_TRANSFER_NOT_FOUND = 37
    PENDING_TRANSFER_NOT_PENDING = 38
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = 39
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = 40
    PENDING_TRANSFER_HAS_DIFFERENT_KIND = 41
    EXCEEDS_PENDING_TRANSFER_AMOUNT = 42
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = 43
    PENDING_TRANSFER_ALREADY_POSTED = 44
    PENDING_TRANSFER_ALREADY_VOIDED = 45
    PENDING_TRANSFER_EXPIRED = 46
    OVERFLOWS_DEBITS_PENDING = 47
    OVERFLOWS_CREDITS_PENDING = 48
    OVERFLOWS_DEBITS_POSTED = 49
    OVERFLOWS_CREDITS_POSTED = 50
    OVERFLOWS_DEBITS = 51
    OVERFLOWS_CREDITS = 52
    OVERFLOWS_TIMEOUT = 53
    EXCEEDS_CREDITS = 54

    @property
    def label(self) -> str:
        return self.name.lower()


# Read per transfer (Outcome.ok): a module global is cheaper than an enum member by its class.
_OK = Result.OK

# A9: failures that depend on the ledger's state at the time are recorded under the transfer's
# id, so that a retry returns ID_ALREADY_FAILED instead of succeeding later (a failure never
# flips into a success). Every other failure depends only on the transfer itself (and on
# immutable facts) and a retry can only fail the same way, so nothing is recorded for it.
TRANSIENT_RESULTS = frozenset(
    {
        Result.DEBIT_ACCOUNT_NOT_FOUND,
        Result.CREDIT_ACCOUNT_NOT_FOUND,
        Result.PENDING_TRANSFER_NOT_FOUND,
        Result.EXCEEDS_CREDITS,
        Result.OVERFLOWS_DEBITS_PENDING,
        Result.OVERFLOWS_CREDITS_PENDING,
        Result.OVERFLOWS_DEBITS_POSTED,
        Result.OVERFLOWS_CREDITS_POSTED,
        Result.OVERFLOWS_DEBITS,
        Result.OVERFLOWS_CREDITS,
        Result.OVERFLOWS_TIMEOUT,
    }
)


@dataclass(slots=True)
class Account:
    """An account of one kind and one owner (a tenant, or a system account of the operator)."""

    id: int
    kind: Kind
    tenant: str | None
    system: SystemAccount | None
    flags: int
    timestamp_ns: int
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def available(self) -> int:
        """What the owner can still spend: credits_posted - debits_posted - debits_pending."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def owner(self) -> str:
        if self.tenant is not None:
            return self.tenant
        assert self.system is not None
        return f"system:{self.system.name.lower()}"

    def balances(self) -> tuple[int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)


@dataclass(frozen=True, slots=True)
class Transfer:
    """A transfer as a client asks for it (timestamp 0) or as stored (timestamp assigned)."""

    id: int
    debit_account_id: int = 0
    credit_account_id: int = 0
    amount: int = 0
    pending_id: int = 0
    user_data: bytes = b""
    kind: int = 0
    code: int = 0
    flags: int = 0
    timeout_seconds: int = 0
    timestamp_ns: int = 0

    @property
    def is_pending(self) -> bool:
        return bool(self.flags & TransferFlag.PENDING)


@dataclass(frozen=True, slots=True)
class StoredTransfer:
    """A transfer the ledger has recorded: a success (result OK) or a recorded transient failure.

    For OK post/void transfers, `amount` is what was posted (void: the pending amount) and
    `released` is the pending amount the resolution removed from the pending balances.
    """

    transfer: Transfer
    result: Result
    released: int = 0
    entry_index: int = -1

    @property
    def expires_ns(self) -> int:
        """When a pending transfer expires (0 = never)."""
        timeout = self.transfer.timeout_seconds
        return self.transfer.timestamp_ns + timeout * NANOS_PER_SECOND if timeout else 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one transfer of a batch, in request order."""

    index: int
    result: Result
    # For ID_ALREADY_FAILED: what the first attempt got.
    original_result: Result | None = None
    # For OK and EXISTS: the transfer as stored.
    stored: StoredTransfer | None = None

    @property
    def ok(self) -> bool:
        return self.result is _OK


def id_to_bytes(value: int) -> bytes:
    """A 128-bit id as 16 big-endian bytes (so byte order is numeric order)."""
    return value.to_bytes(ID_BYTES, "big")


def id_from_bytes(data: bytes) -> int:
    if len(data) != ID_BYTES:
        raise ValueError(f"an id is {ID_BYTES} bytes, got {len(data)}")
    return int.from_bytes(data, "big")
