"""`orbitq completion bash|zsh`: scripts that know every command and flag, checked by asking a
real bash for completions the way it does when TAB is pressed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from orbitq.clients.cli.main import main

BASH = shutil.which("bash")
ZSH = shutil.which("zsh")


def script(capsys: pytest.CaptureFixture[str], shell: str) -> str:
    assert main(["completion", shell]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def complete(script_path: Path, line: str) -> list[str]:
    """What bash offers after `line` (the word under the cursor is the last, maybe empty)."""
    words = line.split(" ")
    program = f"""
source {script_path}
COMP_WORDS=({" ".join(f"'{w}'" for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE='{line}'
COMP_POINT={len(line)}
_shtab_orbitq orbitq '{words[-1]}' '{words[-2]}'
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    assert BASH is not None
    done = subprocess.run(
        [BASH, "--norc", "--noprofile", "-c", program],
        check=True,
        capture_output=True,
        text=True,
        cwd=script_path.parent,
        timeout=60,
    )
    return sorted(word.strip() for word in done.stdout.splitlines() if word.strip())


@pytest.fixture
def bash_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "orbitq.bash"
    path.write_text(script(capsys, "bash"))
    return path


def test_the_bash_script_names_commands_and_flags(capsys: pytest.CaptureFixture[str]) -> None:
    text = script(capsys, "bash")
    for word in ("quota", "schedule", "contacts", "completion", "set-profile", "plot"):
        assert word in text
    for flag in ("--profile", "--api-key-file", "--json", "--nodes", "--tle"):
        assert flag in text
    assert "complete -o bashdefault -F _shtab_orbitq orbitq" in text


@pytest.mark.skipif(BASH is None, reason="no bash")
def test_bash_completes_commands_flags_and_choices(bash_script: Path) -> None:
    assert complete(bash_script, "orbitq quota ") == [
        "balance",
        "budgets",
        "grant",
        "history",
        "mint",
        "transfer",
    ]
    assert complete(bash_script, "orbitq sch") == ["schedule"]
    assert complete(bash_script, "orbitq schedule ") == ["export", "plot"]
    assert complete(bash_script, "orbitq completion ") == ["bash", "zsh"]
    assert complete(bash_script, "orbitq config ") == ["set-profile", "show"]
    flags = complete(bash_script, "orbitq contacts plot --")
    assert {"--node", "--tle", "--stations", "--out", "--profile", "--target"} <= set(flags)
    assert complete(bash_script, "orbitq node state 44714 ") == ["degraded", "down", "ready"]


@pytest.mark.skipif(BASH is None, reason="no bash")
def test_bash_completes_paths_where_a_file_is_named(bash_script: Path) -> None:
    (bash_script.parent / "elements.tle").write_text("")
    (bash_script.parent / "plans").mkdir()
    assert "elements.tle" in complete(bash_script, "orbitq contacts plot --tle ")
    assert "elements.tle" in complete(bash_script, "orbitq node import ")
    assert complete(bash_script, "orbitq sim --out pl") == ["plans"]


def test_the_zsh_script_names_commands_and_flags(capsys: pytest.CaptureFixture[str]) -> None:
    text = script(capsys, "zsh")
    assert text.startswith("#compdef orbitq")
    for word in ("quota", "schedule", "set-profile", "--profile", "--api-key-file", "_files"):
        assert word in text


@pytest.mark.skipif(ZSH is None, reason="no zsh")
def test_zsh_parses_its_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "_orbitq"
    path.write_text(script(capsys, "zsh"))
    assert ZSH is not None
    subprocess.run([ZSH, "-n", str(path)], check=True, timeout=60)


def test_an_unknown_shell_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["completion", "fish"])
    assert exit_.value.code == 2
    assert "invalid choice: 'fish'" in capsys.readouterr().err
