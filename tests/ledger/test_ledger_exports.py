"""The public surface of orbitq.ledger is pinned: nothing leaks, nothing vanishes by accident."""

from __future__ import annotations

import subprocess
import sys

import orbitq.ledger as ledger

EXPORTED = {
    # constants and limits
    "EMPTY_ROOT",
    "HASH_SIZE",
    "NOTE_BYTES_MAX",
    "NOTE_SIGNATURES_MAX",
    "TREE_SIZE_MAX",
    # errors
    "LedgerIntegrityError",
    "HashSizeError",
    "HeadIntegrityError",
    "InclusionProofError",
    "ConsistencyProofError",
    "KeyFormatError",
    "NoteFormatError",
    "NoteSignatureError",
    "UnknownKeyError",
    "CheckpointFormatError",
    "OriginMismatchError",
    "EntryIntegrityError",
    "CheckpointIntegrityError",
    "AccountIntegrityError",
    "BalanceMismatchError",
    "InvariantViolationError",
    # merkle
    "Frontier",
    "SubtreeReader",
    "leaf_hash",
    "node_hash",
    "root_of",
    "frontier_nodes",
    "root_nodes",
    "root_from_subtrees",
    "inclusion_proof_nodes",
    "inclusion_proof",
    "consistency_proof_nodes",
    "consistency_proof",
    "verify_inclusion",
    "verify_consistency",
    # notes
    "Verifier",
    "Signer",
    "NoteSignature",
    "SignedNote",
    "OpenedNote",
    "key_id",
    "parse_verifier_key",
    "parse_signer_key",
    "sign_note",
    "parse_note",
    "open_note",
    # checkpoints
    "Checkpoint",
    "format_checkpoint_body",
    "parse_checkpoint_body",
    "sign_checkpoint",
    "verify_checkpoint",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(ledger.__all__) == EXPORTED
    assert len(ledger.__all__) == len(EXPORTED), "duplicate names in __all__"


def test_every_exported_name_exists_and_comes_from_the_ledger() -> None:
    for name in ledger.__all__:
        member = getattr(ledger, name)
        if isinstance(member, type) or callable(member):
            module = str(getattr(member, "__module__", ""))
            assert module.startswith("orbitq.ledger."), (name, module)


def test_public_names_are_documented() -> None:
    for name in ledger.__all__:
        member = getattr(ledger, name)
        if isinstance(member, type) or callable(member):
            assert (member.__doc__ or "").strip(), f"{name} has no docstring"


def test_importing_the_ledger_pulls_in_no_server_or_database() -> None:
    code = (
        "import sys, orbitq.ledger\n"
        "heavy = [m for m in ('sqlmodel', 'sqlalchemy', 'grpc', 'orbitq.services', "
        "'orbitq.clients', 'orbitq.v1') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
