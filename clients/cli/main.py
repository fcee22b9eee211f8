"""The `orbitq` entry point: builds the command tree, runs one command, maps failures to exits.

Owns: parser assembly (client commands from this package, broker-side commands from the
`orbitq.commands` entry-point group) and the one place where errors become a printed line and
an exit code. Does not own any command's behaviour.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from orbitq.clients.cli import profiles
from orbitq.clients.cli.registry import (
    EXIT_INTEGRITY,
    CommandError,
    CommandTree,
    add_profile_flag,
)
from orbitq.clients.errors import BrokerCallError, LedgerIntegrityError, OrbitqError

ENTRY_POINT_GROUP = "orbitq.commands"
# Exit status when the broker refused a call (bad input, permissions, state).
EXIT_BROKER_ERROR = 3

# Client-side command modules: each has `register(tree: CommandTree) -> None`.
_CLIENT_COMMAND_MODULES: tuple[str, ...] = (
    "orbitq.clients.cli.tenant",
    "orbitq.clients.cli.quota",
    "orbitq.clients.cli.usage",
    "orbitq.clients.cli.ledger",
    "orbitq.clients.cli.constellation",
    "orbitq.clients.cli.requests",
    "orbitq.clients.cli.plots",
    "orbitq.clients.cli.config",
    "orbitq.clients.cli.completion",
    "orbitq.clients.cli.workload",
    "orbitq.clients.cli.agent",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orbitq",
        description="orbitq: quota tokens, a signed ledger and an orbital scheduler over gRPC.",
    )
    parser.set_defaults(handler=lambda _args: _print_help(parser))
    add_profile_flag(parser)
    tree = CommandTree(parser)
    for register in _registrars():
        register(tree)
    return parser


def _registrars() -> list[Callable[[CommandTree], None]]:
    found: list[Callable[[CommandTree], None]] = []
    for name in _CLIENT_COMMAND_MODULES:
        found.append(importlib.import_module(name).register)
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        found.append(entry.load())
    return found


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every expected failure prints one line and exits non-zero."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # The reader went away (`orbitq ... | head`): stop quietly, as Unix tools do. Output
        # still buffered would fail again at exit, so stdout points at /dev/null from here.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _run(args: argparse.Namespace) -> int:
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        profiles.apply(args)
        return handler(args)
    except CommandError as error:
        print(f"orbitq: {error}", file=sys.stderr)
        return error.exit_code
    except BrokerCallError as error:
        print(f"orbitq: {error.details} [{error.code.name}]", file=sys.stderr)
        return EXIT_BROKER_ERROR
    except LedgerIntegrityError as error:  # before OrbitqError: BrokerIntegrityError is both
        print(f"orbitq: ledger verification FAILED: {error}", file=sys.stderr)
        return EXIT_INTEGRITY
    except OrbitqError as error:
        print(f"orbitq: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("orbitq: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
