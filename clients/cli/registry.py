"""How subcommands are declared: `orbitq <group> <command>` paths onto argparse.

Owns: building the parser tree from command paths, the shared connection and `--json` flags,
and `CommandError` (a failure to print as one line, without a traceback).
Does not own: what any command does.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

from orbitq.clients._defaults import TARGET_DEFAULT, TIMEOUT_SECONDS_DEFAULT

# A handler gets the parsed arguments and returns the process exit code.
Handler = Callable[[argparse.Namespace], int]

# Exit status when the ledger, or what a broker presented of it, fails verification.
EXIT_INTEGRITY = 4


class CommandError(Exception):
    """A failure the CLI prints as one clear line before exiting with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_connection_flags(
    parser: argparse.ArgumentParser, *, target_help: str | None = None
) -> None:
    """--target, --api-key and friends. Each is resolved before the command runs (main():
    orbitq.clients.cli.profiles): the flag, else its ORBITQ_* variable, else the profile's
    value, else the default.

    With `target_help`, --target comes from the flag only: giving it selects an online mode
    (e.g. `ledger verify`, which otherwise works offline)."""
    group = parser.add_argument_group("connection (flag > environment > profile > default)")
    if target_help is None:
        parser.set_defaults(connection="required")
        group.add_argument(
            "--target",
            help=f"broker address HOST:PORT (env ORBITQ_TARGET; default {TARGET_DEFAULT})",
        )
    else:
        parser.set_defaults(connection="optional")
        group.add_argument("--target", metavar="HOST:PORT", help=target_help)
    group.add_argument("--api-key", help="API key (env ORBITQ_API_KEY)")
    group.add_argument(
        "--api-key-file",
        metavar="FILE",
        help="read the API key from FILE, which only its owner may read (chmod 600)",
    )
    group.add_argument(
        "--timeout",
        type=float,
        help=f"seconds to wait for each call (env ORBITQ_TIMEOUT; default "
        f"{TIMEOUT_SECONDS_DEFAULT:g})",
    )
    group.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="PEM file of the CA that signed the broker's certificate: connect over TLS "
        "(env ORBITQ_TLS_CA)",
    )
    add_profile_flag(group)


def add_profile_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--profile NAME; on a subcommand it does not hide one given before it (`orbitq
    --profile prod quota balance`), hence SUPPRESS."""
    parser.add_argument(
        "--profile",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="connection settings of [profile.NAME] in the config file (env ORBITQ_PROFILE; "
        "default: [profile.default] if present); see `orbitq config show`",
    )


@dataclass
class CommandTree:
    """Declares `orbitq a b c` commands; groups are created on first use and shared."""

    root: argparse.ArgumentParser
    _groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = field(
        default_factory=dict
    )
    _parsers: dict[str, argparse.ArgumentParser] = field(default_factory=dict)

    def group(self, path: str, help_text: str) -> None:
        """Declare a command group (e.g. "quota") with its help line."""
        self._subparsers_of(path, help_text)

    def add(
        self,
        path: str,
        help_text: str,
        handler: Handler,
        *,
        connects: bool = False,
        json_output: bool = False,
    ) -> argparse.ArgumentParser:
        """Declare the command at `path` ("quota mint"); returns its parser for arguments."""
        parent_path, _, name = path.rpartition(" ")
        subparsers = self._subparsers_of(parent_path, None)
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        parser.set_defaults(handler=handler)
        if json_output:
            parser.add_argument("--json", action="store_true", help="print JSON for scripts")
        if connects:
            add_connection_flags(parser)
        self._parsers[path] = parser
        return parser

    def _subparsers_of(
        self, path: str, help_text: str | None
    ) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        if path in self._groups:
            return self._groups[path]
        if path == "":
            parser = self.root
        else:
            parent_path, _, name = path.rpartition(" ")
            parent = self._subparsers_of(parent_path, None)
            parser = parent.add_parser(name, help=help_text, description=help_text)
            parser.set_defaults(handler=_usage_of(parser))
        subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
        self._groups[path] = subparsers
        return subparsers


def _usage_of(parser: argparse.ArgumentParser) -> Handler:
    def show_usage(_: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show_usage
