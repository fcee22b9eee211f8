"""Named connection profiles, and where each connection setting of a command comes from.

Owns: the config file (`ORBITQ_CONFIG`, else `$XDG_CONFIG_HOME/orbitq/config.toml`, else
`~/.config/orbitq/config.toml`), reading its `[profile.NAME]` tables, choosing one (`--profile`,
else `ORBITQ_PROFILE`, else a profile named `default` if there is one), resolving each setting
by precedence — flags, then the environment, then the profile, then the defaults — reading an
API key file (refused unless only its owner can read it: mode 0600 or 0400), and writing a
profile (`set_profile`: the file is rewritten whole with mode 0600, its comments and other
profiles kept).
Does not own: the flags themselves (registry.add_connection_flags) or the `config` commands.

    [profile.prod]
    target = "broker.example.net:7707"
    api_key_file = "~/.config/orbitq/prod.key"   # mode 0600: chmod 600 it
    tls_ca = "~/.config/orbitq/prod-ca.pem"
    timeout = 30

| setting | flag | environment | profile key | default |
| --- | --- | --- | --- | --- |
| broker address | `--target` | `ORBITQ_TARGET` | `target` | 127.0.0.1:7707 |
| API key | `--api-key`, `--api-key-file` | `ORBITQ_API_KEY` | `api_key_file` | none |
| TLS CA | `--tls-ca` | `ORBITQ_TLS_CA` | `tls_ca` | none (plain text) |
| timeout, s | `--timeout` | `ORBITQ_TIMEOUT` | `timeout` | 10 |

Commands that work offline unless given `--target` (`ledger verify`, `ledger vkey`) take the
target from `--target` only, so a profile never turns an offline audit into an online one.
Relative paths in the file are relative to the file's folder; `~` is the home folder.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbitq.clients._defaults import TARGET_DEFAULT, TIMEOUT_SECONDS_DEFAULT
from orbitq.clients.cli.registry import CommandError

CONFIG_ENV = "ORBITQ_CONFIG"
PROFILE_ENV = "ORBITQ_PROFILE"
DEFAULT_PROFILE = "default"
PROFILE_KEYS = ("target", "api_key_file", "tls_ca", "timeout")
PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
CONFIG_BYTES_MAX = 1024 * 1024
KEY_BYTES_MAX = 4096
PROFILES_MAX = 1_000
# Group and others may not read a key file (nor write it: the same bits of the mode).
KEY_MODE_FORBIDDEN = stat.S_IRWXG | stat.S_IRWXO
FILE_MODE = 0o600
FOLDER_MODE = 0o700


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    target: str | None = None
    api_key_file: Path | None = None
    tls_ca: Path | None = None
    timeout: float | None = None


@dataclass
class Connection:
    """The settings a client is built from, and where each came from (for `config show`)."""

    target: str | None
    api_key: str | None
    tls_ca: str | None
    timeout: float
    profile: str | None
    sources: dict[str, str] = field(default_factory=dict)


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "orbitq" / "config.toml"


def load_profiles(path: Path) -> dict[str, Profile]:
    """Every profile of the file at `path` (none when there is no file); CommandError naming
    the file and the fault when it is not what this module writes."""
    text = _read_config(path)
    if text is None:
        return {}
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CommandError(f"{path} is not valid TOML: {error}") from None
    unknown = sorted(set(document) - {"profile"})
    if unknown:
        raise CommandError(
            f"{path}: unknown top-level key(s) {', '.join(unknown)}; use [profile.NAME]"
        )
    tables = document.get("profile", {})
    if not isinstance(tables, dict) or len(tables) > PROFILES_MAX:
        raise CommandError(
            f"{path}: `profile` must hold at most {PROFILES_MAX} [profile.NAME] tables"
        )
    return {name: _profile(path, name, table) for name, table in tables.items()}


def _read_config(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(CONFIG_BYTES_MAX + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > CONFIG_BYTES_MAX:
        raise CommandError(f"{path} is larger than {CONFIG_BYTES_MAX:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CommandError(f"{path} is not UTF-8 text (byte {error.start})") from None


def _profile(path: Path, name: str, table: object) -> Profile:
    where = f"{path} [profile.{name}]"
    if not isinstance(table, dict):
        raise CommandError(f"{where} must be a table")
    if not PROFILE_NAME.match(name):
        raise CommandError(f"{where}: a profile name is 1-63 of A-Z a-z 0-9 _ . - characters")
    unknown = sorted(set(table) - set(PROFILE_KEYS))
    if unknown:
        raise CommandError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(PROFILE_KEYS)}"
        )
    for key in ("target", "api_key_file", "tls_ca"):
        if key in table and not (isinstance(table[key], str) and table[key]):
            raise CommandError(f"{where}: {key} must be a non-empty string")
    timeout = table.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
    ):
        raise CommandError(f"{where}: timeout must be a number of seconds above 0")

    def file_of(key: str) -> Path | None:
        value = table.get(key)
        return None if value is None else path.parent / Path(value).expanduser()

    return Profile(
        name=name,
        path=path,
        target=table.get("target"),
        api_key_file=file_of("api_key_file"),
        tls_ca=file_of("tls_ca"),
        timeout=None if timeout is None else float(timeout),
    )


def select_profile(named: str | None, env: Mapping[str, str] | None = None) -> Profile | None:
    """The profile `named` (or ORBITQ_PROFILE's), else `default` when the file has one."""
    env = os.environ if env is None else env
    path = config_path(env)
    name = named or env.get(PROFILE_ENV) or None
    profiles = load_profiles(path)
    if name is None:
        return profiles.get(DEFAULT_PROFILE)
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise CommandError(
            f"no profile {name!r} in {path} (profiles there: {known}); create it with "
            f"`orbitq config set-profile {name} --target HOST:PORT --api-key-file FILE`"
        )
    return profiles[name]


def read_key_file(path: Path) -> str:
    """The API key in `path`, refused unless only its owner may read it."""
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read(KEY_BYTES_MAX + 1)
    except OSError as error:
        raise CommandError(f"cannot read API key file {path}: {error.strerror or error}") from None
    check_key_mode(path, mode)
    if len(data) > KEY_BYTES_MAX:
        raise CommandError(f"API key file {path} is larger than {KEY_BYTES_MAX:,} bytes")
    key = data.decode("utf-8", errors="replace").strip()
    if not key:
        raise CommandError(f"API key file {path} is empty")
    return key


def check_key_mode(path: Path, mode: int) -> None:
    if mode & KEY_MODE_FORBIDDEN:
        raise CommandError(
            f"API key file {path} has mode {stat.S_IMODE(mode):04o}: users other than its "
            f"owner may read it, so orbitq will not use it; fix it with: chmod 600 {path}"
        )


def resolve(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Connection:
    """Each connection setting by precedence: flag, environment, profile, default."""
    env = os.environ if env is None else env
    profile = select_profile(getattr(args, "profile", None), env)
    sources: dict[str, str] = {}

    def pick(name: str, flag: object, variable: str, of_profile: object) -> object:
        """The first of flag, environment variable, profile value that is set."""
        for value, source in (
            (flag, "flag"),
            (env.get(variable) or None, f"env {variable}"),
            (of_profile, f"profile {profile.name}" if profile else ""),
        ):
            if value is not None:
                sources[name] = source
                return value
        sources[name] = "default"
        return None

    if getattr(args, "connection", "") == "optional":
        # Offline unless --target: a profile or the environment must not flip the mode.
        target = args.target
        sources["target"] = "flag" if target is not None else "none (offline)"
    else:
        target = pick("target", args.target, "ORBITQ_TARGET", _of(profile).target)
        target = target or TARGET_DEFAULT
    tls_ca = pick("tls_ca", args.tls_ca, "ORBITQ_TLS_CA", _of(profile).tls_ca)
    timeout = pick("timeout", args.timeout, "ORBITQ_TIMEOUT", _of(profile).timeout)
    return Connection(
        target=None if target is None else str(target),
        api_key=_api_key(args, env, profile, sources),
        tls_ca=None if tls_ca is None else str(tls_ca),
        timeout=_seconds(TIMEOUT_SECONDS_DEFAULT if timeout is None else timeout, sources),
        profile=None if profile is None else profile.name,
        sources=sources,
    )


def _of(profile: Profile | None) -> Profile:
    return profile if profile is not None else Profile(name="", path=Path())


def _api_key(
    args: argparse.Namespace,
    env: Mapping[str, str],
    profile: Profile | None,
    sources: dict[str, str],
) -> str | None:
    key_file: str | None = getattr(args, "api_key_file", None)
    if args.api_key and key_file:
        raise CommandError("give --api-key or --api-key-file, not both")
    if args.api_key:
        sources["api_key"] = "flag --api-key"
        return str(args.api_key)
    if key_file:
        sources["api_key"] = f"flag --api-key-file {key_file}"
        return read_key_file(Path(key_file).expanduser())
    if env.get("ORBITQ_API_KEY"):
        sources["api_key"] = "env ORBITQ_API_KEY"
        return env["ORBITQ_API_KEY"]
    if profile is not None and profile.api_key_file is not None:
        sources["api_key"] = f"profile {profile.name} ({profile.api_key_file})"
        return read_key_file(profile.api_key_file)
    sources["api_key"] = "none"
    return None


def _seconds(value: object, sources: Mapping[str, str]) -> float:
    source = sources.get("timeout", "default")
    try:
        seconds = float(str(value))
    except ValueError:
        raise CommandError(
            f"timeout {value!r} (from {source}) is not a number of seconds"
        ) from None
    if not seconds > 0:
        raise CommandError(f"timeout {value!r} (from {source}) must be above 0 seconds")
    return seconds


def apply(args: argparse.Namespace) -> None:
    """Resolve a command's connection flags in place (main() does it before the handler);
    `args.resolved` keeps the Connection with its sources."""
    if getattr(args, "connection", None) is None:
        return
    connection = resolve(args)
    args.target = connection.target
    args.api_key = connection.api_key
    args.tls_ca = connection.tls_ca
    args.timeout = connection.timeout
    args.resolved = connection


def set_profile(path: Path, name: str, settings: Mapping[str, str | float]) -> None:
    """Create or update profile `name` with `settings` (other keys and profiles kept), and
    write the file whole with mode 0600 (its folder 0700 when created)."""
    import tomlkit

    if not PROFILE_NAME.match(name):
        raise CommandError(f"profile name {name!r}: use 1-63 of A-Z a-z 0-9 _ . - characters")
    load_profiles(path)  # the file must be sound before it is rewritten
    text = _read_config(path)
    document = tomlkit.parse(text) if text is not None else tomlkit.document()
    if "profile" not in document:
        document["profile"] = tomlkit.table(is_super_table=True)
    profiles: Any = document["profile"]
    if name not in profiles:
        profiles[name] = tomlkit.table()
    for key, value in settings.items():
        profiles[name][key] = value
    rendered = tomlkit.dumps(document)
    path.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    write_private(path, rendered.encode("utf-8"))
    load_profiles(path)


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` whole with `data`, readable by its owner only (mode 0600)."""
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)  # O_CREAT's mode only applies to a new file
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
