"""`orbitq ledger checkpoint|entries|prove`, and the client side of `ledger vkey|verify`.

Every checkpoint these commands show is verified first, as the SDK does: signed by the pinned
key (`--vkey`, else the broker's own key pinned on first use, which is weaker and said so) and
consistent with the last checkpoint verified from this machine (kept in --trust-dir, default
ORBITQ_TRUST_DIR or ~/.orbitq/trust). `ledger vkey` and `ledger verify` are declared with the
broker-side commands (they also work offline, from a data directory or a database) and call
the online halves here.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any

from orbitq.clients import Checkpoint, LedgerEntry, Proof
from orbitq.clients.cli.connect import client_from, rfc3339_ns, whole_number
from orbitq.clients.cli.output import print_json, print_table
from orbitq.clients.cli.progress import bar
from orbitq.clients.cli.registry import CommandError, CommandTree
from orbitq.clients.ids import parse_id


def register(tree: CommandTree) -> None:
    tree.group("ledger", "the signed ledger: checkpoints, entries, proofs, verification")
    checkpoint = tree.add(
        "ledger checkpoint",
        "the broker's latest checkpoint, verified (signature and consistency)",
        _checkpoint,
        connects=True,
        json_output=True,
    )
    checkpoint.add_argument(
        "--fresh", action="store_true", help="ask the broker to sign one now (operator)"
    )
    add_trust_flags(checkpoint)
    entries = tree.add(
        "ledger entries",
        "entries [start, end) of the log, decoded",
        _entries,
        connects=True,
        json_output=True,
    )
    entries.add_argument("--start", type=_index, default=0, metavar="I", help="first entry")
    entries.add_argument(
        "--end", type=_index, default=0, metavar="J", help="end, exclusive (default: all)"
    )
    prove = tree.add(
        "ledger prove",
        "prove an entry (or a transfer's entry) is in the latest checkpoint, verified here",
        _prove,
        connects=True,
        json_output=True,
    )
    prove.add_argument("index", nargs="?", type=_index, help="the entry's index")
    prove.add_argument("--transfer", metavar="ID", help="the transfer id (32 hex digits or UUID)")
    prove.add_argument(
        "--wait",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="wait this long for a checkpoint covering a fresh transfer (default 5)",
    )
    add_trust_flags(prove)


def add_trust_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vkey",
        metavar="VKEY",
        help="the broker's verifier key (name+id+key) to pin; default: the broker's own key, "
        "pinned on first use (weaker)",
    )
    parser.add_argument(
        "--trust-dir",
        type=Path,
        metavar="DIR",
        help="where verified checkpoints are kept (env ORBITQ_TRUST_DIR; default ~/.orbitq/trust)",
    )


def _index(text: str) -> int:
    return whole_number(text, what="an entry index")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# -- checkpoint ------------------------------------------------------------------------------------


def checkpoint_json(checkpoint: Checkpoint) -> dict[str, Any]:
    return {
        "note": checkpoint.note,
        "origin": checkpoint.origin,
        "size": checkpoint.size,
        "root": b64(checkpoint.root_hash),
        "verifier_key": checkpoint.verifier_key,
        "key_source": checkpoint.key_source,
        "previous_size": checkpoint.previous_size,
    }


def describe_trust(checkpoint: Checkpoint) -> str:
    """How a checkpoint was verified, in words (TOFU is said to be the weaker)."""
    if checkpoint.key_source == "pinned":
        key = f"signed by the pinned key {checkpoint.verifier_key}"
    else:
        key = (
            f"signed by {checkpoint.verifier_key}, the broker's own key pinned on first use "
            "(weaker than a key pinned with --vkey)"
        )
    if checkpoint.previous_size == checkpoint.size:
        return f"{key}; the same checkpoint was verified before"
    if checkpoint.previous_size:
        return f"{key}; consistent with checkpoint {checkpoint.previous_size:,} verified before"
    return f"{key}; first checkpoint verified from this machine"


def _checkpoint(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        checkpoint = client.checkpoint(fresh=args.fresh)
    if args.json:
        print_json(checkpoint_json(checkpoint))
        return 0
    print(f"checkpoint of {checkpoint.origin}: {checkpoint.size:,} entries")
    print(f"  root      {b64(checkpoint.root_hash)}")
    print(f"  verified  {describe_trust(checkpoint)}")
    print()
    sys.stdout.write(checkpoint.note)
    return 0


# -- entries ---------------------------------------------------------------------------------------


def entry_row(entry: LedgerEntry) -> dict[str, object]:
    """One decoded entry as a table row a person can read."""
    row: dict[str, object] = {
        "index": entry.index,
        "time": rfc3339_ns(entry.timestamp_ns),
        "entry": "account" if entry.account is not None else "transfer",
        "result": entry.result or "-",
    }
    if entry.account is not None:
        account = entry.account
        limit = ", may not overdraw" if account.debits_must_not_exceed_credits else ""
        row["what"] = f"account #{account.id}: {account.owner} {account.kind}{limit}"
    elif entry.transfer is not None:
        t = entry.transfer
        flags = f" [{','.join(sorted(t.flags))}]" if t.flags else ""
        row["what"] = (
            f"{t.code} {t.amount:,} {t.kind}  #{t.debit_account_id} -> #{t.credit_account_id}"
            f"{flags}  id {t.id}"
        )
    return row


ENTRY_COLUMNS = ["index", "time", "entry", "what", "result"]


def _entries(args: argparse.Namespace) -> int:
    if args.end and args.start > args.end:
        raise CommandError(f"--start {args.start} is after --end {args.end}")
    with client_from(args) as client:
        entries = client.entries(args.start, args.end)
    if args.json:
        print_json({"entries": [{"index": e.index, "data": b64(e.data)} for e in entries]})
    else:
        print_table([entry_row(entry) for entry in entries], ENTRY_COLUMNS)
    return 0


# -- prove -----------------------------------------------------------------------------------------


def _prove(args: argparse.Namespace) -> int:
    if (args.index is None) == (args.transfer is None):
        raise CommandError("give either an entry INDEX or --transfer ID")
    with client_from(args) as client:
        if args.transfer is not None:
            try:
                transfer_id = parse_id(args.transfer)
            except ValueError as error:
                raise CommandError(f"--transfer: {error}") from None
            proof = client.prove_transfer(transfer_id, wait_seconds=args.wait)
        else:
            proof = client.prove_entry(args.index, wait_seconds=args.wait)
    if args.json:
        print_json(_proof_json(proof))
        return 0
    checkpoint = proof.checkpoint
    print(
        f"entry {proof.index:,} is in checkpoint {checkpoint.size:,} of {checkpoint.origin}: "
        f"inclusion proof verified here ({len(proof.hashes)} hashes)"
    )
    print(f"  root        {b64(checkpoint.root_hash)}")
    print(f"  checkpoint  {describe_trust(checkpoint)}")
    print(f"  leaf hash   {proof.leaf_hash.hex()}")
    print()
    print_table([entry_row(proof.entry)], ENTRY_COLUMNS)
    return 0


def _proof_json(proof: Proof) -> dict[str, Any]:
    return {
        "verified": True,
        "index": proof.index,
        "tree_size": proof.checkpoint.size,
        "root": b64(proof.checkpoint.root_hash),
        "entry": b64(proof.entry.data),
        "leaf_hash": b64(proof.leaf_hash),
        "hashes": [b64(value) for value in proof.hashes],
        "checkpoint": checkpoint_json(proof.checkpoint),
        "decoded": entry_row(proof.entry),
    }


# -- the online halves of `ledger vkey` and `ledger verify` ---------------------------------------


def print_public_key(args: argparse.Namespace) -> int:
    """`orbitq ledger vkey` against a running broker (GetPublicKey)."""
    with client_from(args) as client:
        key = client.public_key()
    print(key.verifier_key)
    print(
        f"(as broker {key.origin} presents it: compare it with the key its operator publishes "
        "before pinning it with --vkey)",
        file=sys.stderr,
    )
    return 0


def verify_online(args: argparse.Namespace) -> int:
    """`orbitq ledger verify --target`: verify the latest checkpoint (signature, consistency
    with the last one verified here) and every entry under it, as a client."""
    progress = bar(args, "verifying", "entries")
    try:
        with client_from(args) as client:
            result = client.verify_log(progress=progress)
    finally:
        progress.close()
    checkpoint = result.checkpoint
    if args.json:
        print_json({"ok": True, "entries": result.entries, **checkpoint_json(checkpoint)})
        return 0
    print(
        f"ledger of {checkpoint.origin} verified as a client: {result.entries:,} entries hash "
        f"to the root of checkpoint {checkpoint.size:,}"
    )
    print(f"  root      {b64(checkpoint.root_hash)}")
    print(f"  verified  {describe_trust(checkpoint)}")
    return 0
