"""`orbitq config set-profile|show`: named connection profiles, so a person does not export keys.

Owns: the two commands' arguments and output. `set-profile` writes `[profile.NAME]` into the
config file (mode 0600; `--api-key-stdin` also stores a key read from standard input into the
profile's key file, mode 0600); `show` prints each connection setting a command would use and
where it came from (flag, environment, profile, default), never the key itself.
Does not own: the file's format, precedence or permission rules (profiles.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orbitq.clients.cli import profiles
from orbitq.clients.cli.output import print_json, print_table
from orbitq.clients.cli.registry import CommandError, CommandTree

# How much of a key `show` prints: enough to tell two keys apart, not enough to use one.
KEY_PREFIX_SHOWN = 6


def register(tree: CommandTree) -> None:
    tree.group("config", "the config file's named connection profiles (--profile NAME)")
    set_profile = tree.add(
        "config set-profile",
        "create or update [profile.NAME] in the config file (written with mode 0600)",
        _set_profile,
    )
    set_profile.add_argument("name", metavar="NAME", help="the profile, e.g. prod")
    set_profile.add_argument("--target", metavar="HOST:PORT", help="the broker's address")
    set_profile.add_argument(
        "--api-key-file",
        metavar="FILE",
        help="the file holding the API key (it must have mode 0600)",
    )
    set_profile.add_argument(
        "--api-key-stdin",
        action="store_true",
        help="read the API key from standard input and store it in --api-key-file (mode 0600; "
        "default file: NAME.key beside the config file)",
    )
    set_profile.add_argument("--tls-ca", metavar="FILE", help="PEM file of the broker's CA")
    set_profile.add_argument("--timeout", type=float, metavar="SECONDS", help="per call")
    tree.add(
        "config show",
        "show the connection a command would use, where each setting comes from, and the "
        "profiles in the config file",
        _show,
        connects=True,
        json_output=True,
    )


def _set_profile(args: argparse.Namespace) -> int:
    path = profiles.config_path()
    settings: dict[str, str | float] = {}
    if args.target:
        settings["target"] = args.target
    if args.tls_ca:
        settings["tls_ca"] = str(Path(args.tls_ca).expanduser().resolve())
    if args.timeout is not None:
        if not args.timeout > 0:
            raise CommandError("--timeout must be above 0 seconds")
        settings["timeout"] = args.timeout
    key_file = _key_file(args, path)
    if key_file is not None:
        settings["api_key_file"] = str(key_file)
    if not settings:
        raise CommandError("nothing to set: give --target, --api-key-file, --tls-ca or --timeout")
    profiles.set_profile(path, args.name, settings)
    print(f"profile {args.name} written to {path} (mode 0600): {', '.join(sorted(settings))}")
    return 0


def _key_file(args: argparse.Namespace, config: Path) -> Path | None:
    """The key file to record: checked (mode 0600), or written from stdin first."""
    if args.api_key_file is None and not args.api_key_stdin:
        return None
    path = (
        Path(args.api_key_file).expanduser().resolve()
        if args.api_key_file
        else config.parent / f"{args.name}.key"
    )
    if args.api_key_stdin:
        key = sys.stdin.readline(profiles.KEY_BYTES_MAX + 1).strip()
        if not key:
            raise CommandError("--api-key-stdin: standard input held no key")
        path.parent.mkdir(mode=profiles.FOLDER_MODE, parents=True, exist_ok=True)
        profiles.write_private(path, key.encode("utf-8") + b"\n")
    else:
        profiles.read_key_file(path)  # exists, readable, mode 0600, not empty
    return path


def _show(args: argparse.Namespace) -> int:
    path = profiles.config_path()
    known = profiles.load_profiles(path)
    connection: profiles.Connection = args.resolved  # main() resolved the flags
    key = connection.api_key
    settings = {
        "target": connection.target,
        "api_key": None if key is None else key[:KEY_PREFIX_SHOWN] + "...",
        "tls_ca": connection.tls_ca,
        "timeout": connection.timeout,
    }
    if args.json:
        print_json(
            {
                "config": str(path),
                "profile": connection.profile,
                "profiles": sorted(known),
                "settings": settings,
                "sources": connection.sources,
            }
        )
        return 0
    print(f"config file  {path}{'' if path.exists() else ' (none yet)'}")
    print(f"profiles     {', '.join(sorted(known)) or 'none'}")
    print(f"profile      {connection.profile or 'none'}")
    rows = [
        {"setting": name, "value": value, "from": connection.sources.get(name, "default")}
        for name, value in settings.items()
    ]
    print_table(rows, ["setting", "value", "from"])
    return 0
