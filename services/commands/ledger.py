"""`orbitq ledger vkey` and `orbitq ledger verify`: offline from a broker's data directory or
database, or online as a client (`--target`, through orbitq.clients.cli.ledger).

Offline verify is the full audit (orbitq.ledger.audit, rules V1..V20): it needs the broker's
verifier key, from the data directory's key file or `--vkey`. It also checks the stored log
against the last checkpoint verified from this machine (the same trust state the SDK keeps),
and records the newest one after a clean audit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from orbitq.clients.cli import ledger as client_ledger
from orbitq.clients.cli.output import print_json
from orbitq.clients.cli.progress import bar
from orbitq.clients.cli.registry import (
    EXIT_INTEGRITY,
    CommandError,
    CommandTree,
    add_connection_flags,
)

if TYPE_CHECKING:
    from orbitq.ledger.audit import AuditReport
    from orbitq.ledger.note import Signer, Verifier
    from orbitq.services.config import BrokerConfig


def register(tree: CommandTree) -> None:
    tree.group("ledger", "the signed ledger: checkpoints, entries, proofs, verification")
    vkey = tree.add(
        "ledger vkey",
        "print the broker's verifier key (from a running broker, or offline with --data-dir)",
        _vkey,
    )
    vkey.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="read it from this broker's key file"
    )
    _passphrase_flag(vkey)
    add_connection_flags(vkey)
    verify = tree.add(
        "ledger verify",
        "verify the whole ledger: offline (--data-dir, --db) or as a client (--target); exits "
        f"{EXIT_INTEGRITY} naming the first bad entry on any discrepancy",
        _verify,
        json_output=True,
    )
    verify.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="audit this broker's database, with its key file (env ORBITQ_DATA_DIR; the "
        "default when neither --db nor --target is given)",
    )
    verify.add_argument(
        "--db",
        metavar="URL",
        help="audit this database (the broker's key: --vkey, or --data-dir's key file)",
    )
    verify.add_argument(
        "--progress", action="store_true", help="show a progress bar even if stderr is no TTY"
    )
    _passphrase_flag(verify)
    client_ledger.add_trust_flags(verify)
    add_connection_flags(
        verify,
        target_help="verify as a client of the broker at HOST:PORT: its checkpoint, every entry "
        "it serves, and consistency with the checkpoint verified before from this machine",
    )


def _passphrase_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passphrase-file",
        type=Path,
        help="passphrase of an encrypted key file (or env ORBITQ_KEY_PASSPHRASE)",
    )


def _vkey(args: argparse.Namespace) -> int:
    if args.data_dir is None:
        return client_ledger.print_public_key(args)
    print(_signer_of(args.data_dir, args.passphrase_file)[1].verifier_key())
    return 0


def _signer_of(data_dir: Path | None, passphrase_file: Path | None) -> tuple[BrokerConfig, Signer]:
    """(config, Signer) of a data directory, or a CommandError saying what is missing."""
    from orbitq.ledger.note import Signer
    from orbitq.services.commands.broker import _passphrase
    from orbitq.services.config import load_config
    from orbitq.services.identity.signing_key import SigningKeyError, load_key_file

    try:
        config = load_config(data_dir)
        passphrase = _passphrase(passphrase_file) or config.key_passphrase
        key = load_key_file(config.key_path, passphrase)
    except (SigningKeyError, ValueError, OSError) as error:
        raise CommandError(str(error)) from None
    return config, Signer.from_private_key(config.origin, key)


def _verify(args: argparse.Namespace) -> int:
    """Online or offline; a LedgerIntegrityError reaches main(), which prints it and exits
    EXIT_INTEGRITY."""
    if args.target is not None:
        if args.data_dir is not None or args.db is not None:
            raise CommandError(
                "--target verifies as a client: do not combine it with --data-dir/--db"
            )
        return client_ledger.verify_online(args)
    return _verify_offline(args)


def _verify_offline(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import DBAPIError

    from orbitq.clients._verify import PINNED, TrustState, TrustStore, default_trust_dir
    from orbitq.ledger.audit import audit_store
    from orbitq.ledger.store import LedgerStore
    from orbitq.services.db.engine import create_engine

    verifier, db_url = _key_and_database(args)
    try:
        engine = create_engine(db_url)
    except ValueError as error:
        raise CommandError(str(error)) from None
    trust = TrustStore(args.trust_dir or default_trust_dir())
    state = trust.load(verifier.name)
    known: dict[int, bytes] = {}
    if state is not None and state.verifier_key == verifier.verifier_key():
        known = {state.size: state.root_hash}
    elif state is not None:
        print(
            f"orbitq: note: the checkpoint of {verifier.name} verified before from this machine "
            f"was signed by another key ({state.verifier_key}); not comparing with it",
            file=sys.stderr,
        )
    progress = bar(args, "verifying", "entries")
    try:
        report = audit_store(LedgerStore(engine), verifier, known_roots=known, progress=progress)
    except (DBAPIError, engine.dialect.loaded_dbapi.Error) as error:
        # The audit reads through the raw DBAPI cursor: the driver's own errors arrive here.
        detail = error.orig if isinstance(error, DBAPIError) else error
        raise CommandError(
            f"cannot read the ledger from the database: {detail}; is it an orbitq broker's "
            "database?"
        ) from None
    finally:
        progress.close()
        engine.dispose()
    newest = report.newest_checkpoint
    if newest is not None and (state is None or newest.size >= state.size):
        vkey = verifier.verifier_key()
        trust.save(
            TrustState(newest.origin, vkey, PINNED, newest.size, newest.root_hash, newest.note)
        )
    _print_report(args, report, verifier, state.size if known and state is not None else None)
    return 0


def _key_and_database(args: argparse.Namespace) -> tuple[Verifier, str]:
    """The broker's verifier key (--vkey, or the data directory's key file) and database URL
    (--db, or the data directory's)."""
    from orbitq.ledger.errors import LedgerIntegrityError
    from orbitq.ledger.note import parse_verifier_key

    if args.vkey:
        try:
            verifier = parse_verifier_key(args.vkey)
        except LedgerIntegrityError as error:
            raise CommandError(f"--vkey: {error}") from None
        return verifier, args.db or _config_of(args.data_dir).db_url
    if args.db is not None and args.data_dir is None:
        raise CommandError(
            "--db needs the broker's verifier key: give --vkey (see `orbitq ledger vkey`), or "
            "--data-dir for its key file"
        )
    config, signer = _signer_of(args.data_dir, args.passphrase_file)
    return signer.verifier(), args.db or config.db_url


def _print_report(
    args: argparse.Namespace, report: AuditReport, verifier: Verifier, consistent_with: int | None
) -> None:
    newest = report.newest_checkpoint
    if args.json:
        print_json(
            {
                "ok": True,
                "origin": verifier.name,
                "entries": report.entries,
                "transfers": report.transfers,
                "accounts": report.accounts,
                "checkpoints": report.checkpoints,
                "seconds": round(report.seconds, 3),
                "root": client_ledger.b64(report.root_hash),
                "checkpoint": newest.size if newest is not None else None,
                "consistent_with": consistent_with,
            }
        )
        return
    rate = report.entries / report.seconds if report.seconds > 0 else 0.0
    print(
        f"ledger of {verifier.name} verified: {report.entries:,} entries, "
        f"{report.transfers:,} transfers, {report.accounts:,} accounts, "
        f"{report.checkpoints:,} checkpoints in {report.seconds:.2f} s ({rate:,.0f} entries/s)"
    )
    print(f"  root        {client_ledger.b64(report.root_hash)}")
    print(f"  key         {verifier.verifier_key()}")
    if newest is None:
        print("  checkpoint  none stored yet: nothing signed to check the log against")
    else:
        print(
            f"  checkpoint  {newest.size:,} (newest; every stored checkpoint's signature checked)"
        )
    if consistent_with is not None:
        print(
            f"  consistent  with checkpoint {consistent_with:,} verified before from this machine"
        )


def _config_of(data_dir: Path | None) -> BrokerConfig:
    from orbitq.services.config import load_config

    try:
        return load_config(data_dir)
    except (ValueError, OSError) as error:
        raise CommandError(str(error)) from None
