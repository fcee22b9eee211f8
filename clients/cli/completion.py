"""`orbitq completion bash|zsh`: a shell completion script for every command, flag and choice.

Owns: the command, and marking which arguments name files or folders so the shells complete
paths there. The script is generated from the same argparse tree `orbitq` parses with (shtab,
which writes static scripts: pressing TAB runs no Python, unlike argcomplete's hook, which
would start `orbitq` and load every command module on each key press), so it can never list a
command or flag that does not exist.

    orbitq completion bash > ~/.local/share/bash-completion/completions/orbitq
    orbitq completion zsh > "${fpath[1]}/_orbitq"      # then: autoload -U compinit && compinit
"""

from __future__ import annotations

import argparse

from orbitq.clients.cli.registry import CommandTree

SHELLS = ("bash", "zsh")
# Arguments that name a file or a folder, by metavar or by destination.
FILE_METAVARS = frozenset({"FILE"})
FOLDER_METAVARS = frozenset({"DIR"})
FILE_DESTS = frozenset({"tls_ca", "api_key_file", "passphrase_file", "spec", "vkey_file"})
FOLDER_DESTS = frozenset({"data_dir", "trust_dir"})
PARSERS_MAX = 10_000


def register(tree: CommandTree) -> None:
    parser = tree.add(
        "completion",
        "print a shell completion script: orbitq completion bash > "
        "~/.local/share/bash-completion/completions/orbitq",
        _completion,
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    import shtab

    _mark_paths(parser, shtab.FILE, shtab.DIRECTORY)
    return str(shtab.complete(parser, shell=shell))


def _mark_paths(parser: argparse.ArgumentParser, files: object, folders: object) -> None:
    """Tell shtab which arguments complete as paths (its `complete` attribute)."""
    pending = [parser]
    for _ in range(PARSERS_MAX):
        if not pending:
            return
        current = pending.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
            elif action.metavar in FILE_METAVARS or action.dest in FILE_DESTS:
                action.complete = files  # type: ignore[attr-defined]
            elif action.metavar in FOLDER_METAVARS or action.dest in FOLDER_DESTS:
                action.complete = folders  # type: ignore[attr-defined]
    raise AssertionError(f"more than {PARSERS_MAX} parsers: a cycle in the command tree?")


def _completion(args: argparse.Namespace) -> int:
    from orbitq.clients.cli.main import build_parser

    print(script(build_parser(), args.shell), end="")
    return 0
