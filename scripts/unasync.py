"""Write the SDK's blocking client and transport from their asyncio sources.

`clients/_async_<name>.py` is the source, edited by hand; `clients/_sync_<name>.py` is written
from it line by line with the table RULES below, tidied with the pinned ruff (the TIDY_RULES
fixes, then the formatter: dropping `async ` and `await ` can let a wrapped line fit on one)
and committed. Where a line cannot be rewritten word for word, the source calls a hand-kept
pair of clients/_flavour.py (`async_sleep` and `sleep`, `AsyncLock` and `Lock`, ...), which
the two name rules turn into each other.

    python scripts/unasync.py           rewrite the generated files        (make sdk)
    python scripts/unasync.py --check   write nothing; exit 1 when a
                                        generated file is stale             (make sdk-check)

Both fail when a rule matched nothing (the table must not rot) or when asyncio is left in the
code of a generated file (a construct the table does not know).

The idea, a substitution table from an `_async` tree to a `_sync` one with a `--check` mode
for CI, is httpcore's (its scripts/unasync.py). This script does not ship in the wheel.
"""

from __future__ import annotations

import argparse
import difflib
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("clients/_async_transport.py", "clients/_async_client.py")

# (pattern, replacement), applied in order to every line of a source.
RULES: tuple[tuple[str, str], ...] = (
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    # AsyncX -> X (AsyncIterator, AsyncLock, AsyncTransport, AsyncBrokerClient), async_x -> x
    (r"\bAsync(?=[A-Z])", ""),
    (r"\basync_(?=\w)", ""),
    (r"\borbitq\.clients\._async_", "orbitq.clients._sync_"),
)
COMPILED_RULES = [(re.compile(pattern), replacement) for pattern, replacement in RULES]

# Names that must not survive in the code (strings and comments aside) of a generated file.
ASYNC_NAME = re.compile(
    r"^(async|await|asyncio|Async[A-Z]\w*|async_\w+|__a(?:enter|exit|iter|next)__)$"
)
DIFF_LINES_MAX = 60


def target_of(source: str) -> str:
    return source.replace("/_async_", "/_sync_")


def header(source: str) -> str:
    return f"# Generated from {source} by scripts/unasync.py: do not edit; run `make sdk`.\n"


def unasync(text: str, used: set[int]) -> str:
    """`text` with every rule applied to every line; the rules that matched go into `used`."""
    lines = []
    for line in text.splitlines(keepends=True):
        rewritten = line
        for number, (pattern, replacement) in enumerate(COMPILED_RULES):
            rewritten, count = pattern.subn(replacement, rewritten)
            if count:
                used.add(number)
        lines.append(rewritten)
    return "".join(lines)


def ruff(arguments: list[str], text: str, target: str) -> str:
    """What the pinned ruff writes for `text` (as file `target`, with the project's settings)."""
    done = subprocess.run(  # noqa: S603  (our own interpreter running the pinned ruff)
        [sys.executable, "-m", "ruff", *arguments, "--stdin-filename", target, "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"unasync: ruff {arguments[0]} fails on {target}:\n{done.stderr}")
    return done.stdout


# The lint fixes a rewritten file may need: imports sorted again (a renamed module or name can
# move), and a stream's `for message in call: yield message` (the source's `async for`)
# turned into `yield from call` (unsafe only for a loop with an `else`, which this is not).
TIDY_RULES = "I,UP028"


def tidied(text: str, target: str) -> str:
    """`text` with the TIDY_RULES fixes applied, then formatted."""
    fixed = ruff(["check", "--select", TIDY_RULES, "--fix-only", "--unsafe-fixes"], text, target)
    return ruff(["format"], fixed, target)


def leftovers(text: str) -> list[str]:
    """Where asyncio survives in the code of `text`: `line N: name` for each."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.NAME and ASYNC_NAME.match(token.string):
            found.append(f"line {token.start[0]}: {token.string}")
    return found


def generate(source: str, used: set[int]) -> str:
    target = target_of(source)
    text = header(source) + unasync((ROOT / source).read_text(), used)
    left = leftovers(text)
    if left:
        raise SystemExit(
            f"unasync: {target} would still use asyncio ({', '.join(left)}): call a pair of "
            "clients/_flavour.py there, or add a rule to scripts/unasync.py"
        )
    return tidied(text, target)


def stale(target: str, expected: str) -> bool:
    """Whether the committed `target` differs from `expected`; prints the difference if so."""
    path = ROOT / target
    committed = path.read_text() if path.exists() else ""
    if committed == expected:
        return False
    diff = list(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            f"{target} (committed)",
            f"{target} (generated)",
        )
    )
    sys.stderr.writelines(diff[:DIFF_LINES_MAX])
    if len(diff) > DIFF_LINES_MAX:
        sys.stderr.write(f"... ({len(diff) - DIFF_LINES_MAX} more lines)\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="write nothing; fail if stale")
    args = parser.parse_args(argv)
    used: set[int] = set()
    outputs = {target_of(source): generate(source, used) for source in SOURCES}
    unused = [RULES[number][0] for number in range(len(RULES)) if number not in used]
    if unused:
        print(f"unasync: rules that matched nothing (remove them): {unused}", file=sys.stderr)
        return 1
    if args.check:
        drifted = [target for target, expected in outputs.items() if stale(target, expected)]
        if drifted:
            print(
                f"unasync: stale, not what the asyncio source makes: {', '.join(drifted)}; "
                "run `make sdk` and commit",
                file=sys.stderr,
            )
            return 1
        return 0
    for target, expected in outputs.items():
        (ROOT / target).write_text(expected)
        print(f"unasync: wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
