"""Named profiles in the config file: precedence (flags > environment > profile > defaults), the
0600 rule for key files, the messages a person gets, and a profile actually used to connect."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from orbitq.clients.cli.main import main
from orbitq.clients.cli.profiles import config_path, read_key_file
from orbitq.clients.cli.registry import CommandError
from tests.conftest import ServerHandle

CONFIG = """\
# orbitq profiles (this comment must survive set-profile)
[profile.prod]
target = "prod.example.net:7707"
api_key_file = "prod.key"
tls_ca = "ca.pem"
timeout = 30

[profile.staging]
target = "staging.example.net:7707"
"""
PROD_KEY = "oq_prodkey_0123456789"
ENV_VARS = (
    "ORBITQ_CONFIG",
    "ORBITQ_PROFILE",
    "ORBITQ_TARGET",
    "ORBITQ_API_KEY",
    "ORBITQ_TLS_CA",
    "ORBITQ_TIMEOUT",
    "XDG_CONFIG_HOME",
)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file with two profiles, the prod key file mode 0600, a clean environment."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "orbitq"
    folder.mkdir()
    path = folder / "config.toml"
    path.write_text(CONFIG)
    key = folder / "prod.key"
    key.write_text(PROD_KEY + "\n")
    key.chmod(0o600)
    monkeypatch.setenv("ORBITQ_CONFIG", str(path))
    return path


def show(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main(["config", "show", "--json", *argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    shown: dict[str, Any] = json.loads(captured.out)
    return shown


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    return captured.err


def test_the_profile_fills_what_flags_and_environment_leave(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = show(capsys, "--profile", "prod")
    assert shown["profile"] == "prod"
    assert shown["profiles"] == ["prod", "staging"]
    assert shown["settings"] == {
        "target": "prod.example.net:7707",
        "api_key": PROD_KEY[:6] + "...",  # never the key itself
        "tls_ca": str(config.parent / "ca.pem"),  # relative to the config file
        "timeout": 30.0,
    }
    assert shown["sources"] == {
        "target": "profile prod",
        "api_key": f"profile prod ({config.parent / 'prod.key'})",
        "tls_ca": "profile prod",
        "timeout": "profile prod",
    }


def test_environment_beats_the_profile_and_flags_beat_both(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORBITQ_TARGET", "env.example.net:1")
    monkeypatch.setenv("ORBITQ_API_KEY", "oq_fromenv_key")
    monkeypatch.setenv("ORBITQ_TIMEOUT", "12")
    shown = show(capsys, "--profile", "prod", "--timeout", "3")
    settings, sources = shown["settings"], shown["sources"]
    assert settings["target"] == "env.example.net:1"
    assert sources["target"] == "env ORBITQ_TARGET"
    assert settings["api_key"] == "oq_fro..."
    assert sources["api_key"] == "env ORBITQ_API_KEY"
    assert settings["timeout"] == 3.0
    assert sources["timeout"] == "flag"
    assert sources["tls_ca"] == "profile prod"  # nothing above it was set
    shown = show(capsys, "--profile", "prod", "--target", "flag.example.net:2", "--api-key", "k")
    assert shown["settings"]["target"] == "flag.example.net:2"
    assert shown["sources"]["api_key"] == "flag --api-key"


def test_defaults_when_nothing_is_set(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = show(capsys)
    assert shown["profile"] is None
    assert shown["settings"] == {
        "target": "127.0.0.1:7707",
        "api_key": None,
        "tls_ca": None,
        "timeout": 10.0,
    }
    assert shown["sources"] == {
        "target": "default",
        "api_key": "none",
        "tls_ca": "default",
        "timeout": "default",
    }


def test_choosing_a_profile_flag_environment_and_default(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORBITQ_PROFILE", "staging")
    assert show(capsys)["profile"] == "staging"
    assert show(capsys, "--profile", "prod")["profile"] == "prod"  # the flag beats the variable
    # Before the command, for every command at once.
    code = main(["--profile", "prod", "config", "show", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["profile"] == "prod"
    monkeypatch.delenv("ORBITQ_PROFILE")
    config.write_text(CONFIG + '\n[profile.default]\ntarget = "default.example.net:7707"\n')
    shown = show(capsys)
    assert shown["profile"] == "default"
    assert shown["settings"]["target"] == "default.example.net:7707"


def test_an_unknown_profile_names_the_file_the_choices_and_the_fix(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = fails(capsys, "config", "show", "--profile", "prdo")
    assert f"no profile 'prdo' in {config}" in err
    assert "(profiles there: prod, staging)" in err
    assert "orbitq config set-profile prdo --target HOST:PORT --api-key-file FILE" in err


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_may_read_is_refused(
    mode: int, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = config.parent / "prod.key"
    key.chmod(mode)
    err = fails(capsys, "config", "show", "--profile", "prod")
    assert f"API key file {key} has mode {mode:04o}" in err
    assert f"chmod 600 {key}" in err
    # The same rule for --api-key-file.
    err = fails(capsys, "config", "show", "--api-key-file", str(key))
    assert f"chmod 600 {key}" in err


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_an_owner_only_key_file_is_used(
    mode: int, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (config.parent / "prod.key").chmod(mode)
    assert show(capsys, "--profile", "prod")["settings"]["api_key"] == "oq_pro..."


def test_a_malformed_profile_is_named(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config.write_text('[profile.prod]\ntaget = "x:1"\n')
    err = fails(capsys, "config", "show", "--profile", "prod")
    assert f"{config} [profile.prod]: unknown key(s) taget" in err
    config.write_text('[profile.prod]\ntimeout = "soon"\n')
    assert "timeout must be a number of seconds" in fails(capsys, "config", "show")
    config.write_text("[profile.prod\n")
    assert f"{config} is not valid TOML" in fails(capsys, "config", "show")


def test_set_profile_writes_0600_and_keeps_the_rest(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.chmod(0o644)
    key = tmp_path / "dev.key"
    key.write_text("oq_devkey\n")
    key.chmod(0o600)
    code = main(
        ["config", "set-profile", "dev", "--target", "dev:7707", "--api-key-file", str(key),
         "--timeout", "5"]
    )  # fmt: skip
    assert code == 0
    assert f"profile dev written to {config} (mode 0600)" in capsys.readouterr().out
    assert config.stat().st_mode & 0o777 == 0o600
    text = config.read_text()
    assert "# orbitq profiles (this comment must survive set-profile)" in text
    assert 'target = "staging.example.net:7707"' in text
    shown = show(capsys, "--profile", "dev")
    assert shown["settings"] == {
        "target": "dev:7707",
        "api_key": "oq_dev...",
        "tls_ca": None,
        "timeout": 5.0,
    }
    # An update changes only what it names.
    assert main(["config", "set-profile", "prod", "--timeout", "60"]) == 0
    capsys.readouterr()
    shown = show(capsys, "--profile", "prod")
    assert shown["settings"]["timeout"] == 60.0
    assert shown["settings"]["target"] == "prod.example.net:7707"


def test_set_profile_refuses_a_key_file_others_may_read(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "loose.key"
    key.write_text("oq_loose\n")
    key.chmod(0o644)
    before = config.read_text()
    err = fails(capsys, "config", "set-profile", "loose", "--api-key-file", str(key))
    assert f"chmod 600 {key}" in err
    assert config.read_text() == before


def test_set_profile_stores_a_key_from_standard_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    path = config_path()
    assert path == tmp_path / "xdg" / "orbitq" / "config.toml"
    monkeypatch.setattr("sys.stdin", io.StringIO("oq_fromstdin_key\n"))
    assert main(["config", "set-profile", "lab", "--target", "lab:1", "--api-key-stdin"]) == 0
    capsys.readouterr()
    key = path.parent / "lab.key"
    assert key.read_text() == "oq_fromstdin_key\n"
    assert key.stat().st_mode & 0o777 == 0o600
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert show(capsys, "--profile", "lab")["settings"]["api_key"] == "oq_fro..."


def test_a_profile_connects_a_real_command(
    server: ServerHandle, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = config.parent / "test.key"
    key.write_text(server.operator_key + "\n")
    key.chmod(0o600)
    code = main(
        ["config", "set-profile", "test", "--target", server.target, "--api-key-file", str(key)]
    )
    assert code == 0
    capsys.readouterr()
    assert main(["tenant", "create", "acme", "--profile", "test"]) == 0
    assert main(["--profile", "test", "tenant", "list", "--json"]) == 0
    out = capsys.readouterr().out
    assert "acme" in out
    # Without the profile the command reaches for the default address and has no key.
    assert main(["tenant", "list"]) == 1
    assert "no API key" in capsys.readouterr().err


def test_offline_commands_keep_their_mode_under_a_profile(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`ledger verify` is offline unless --target: a profile's target must not flip it."""
    monkeypatch.setenv("ORBITQ_TRUST_DIR", str(tmp_path / "trust"))
    data_dir = str(tmp_path / "data")
    assert main(["init", "--data-dir", data_dir]) == 0
    capsys.readouterr()
    code = main(["ledger", "verify", "--data-dir", data_dir, "--profile", "prod", "--json"])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_the_key_file_mode_is_checked_on_the_open_file(config: Path) -> None:
    """The mode is read from the descriptor that is read (no window between check and use)."""
    key = config.parent / "prod.key"
    assert read_key_file(key) == PROD_KEY
    os.chmod(key, 0o644)
    with pytest.raises(CommandError, match="chmod 600"):
        read_key_file(key)
