"""`orbitq demo` (the README's first command): the main story, told against a real broker.

Starts a throw-away broker as a real process on the embedded SQLite default in a temporary
directory, tells the story through the public SDK (orbitq.services.demo.story), and stops the
broker with SIGTERM. A broker-side command only because it launches the broker.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from orbitq.clients.cli.registry import CommandError, CommandTree


def register(tree: CommandTree) -> None:
    demo = tree.add(
        "demo", "run the orbitq story against a throw-away broker and show what happened", _demo
    )
    demo.add_argument(
        "--keep", action="store_true", help="keep the broker's data directory and log afterwards"
    )


def _demo(args: argparse.Namespace) -> int:
    from orbitq.services.demo import story
    from orbitq.services.demo.narrator import Narrator
    from orbitq.services.demo.process import running_broker

    directory = Path(tempfile.mkdtemp(prefix="orbitq-demo-"))
    print("orbitq — the tokenized operating layer for space computing")
    print(f"a throw-away broker in {directory}, on the embedded SQLite default")
    with running_broker(
        directory, init_flags=story.init_flags(), config_lines=story.CONFIG_LINES
    ) as broker:
        print(f"broker at {broker.target}; checkpoint key {broker.verifier_key}")
        story.tell(broker, directory, Narrator())
    print()
    if broker.exit_code != 0:
        raise CommandError(
            f"the broker exited with status {broker.exit_code}; see {directory / 'broker.log'}"
        )
    print("The broker was stopped with SIGTERM and shut down cleanly.")
    if args.keep:
        print(f"Its data directory and log are kept in {directory}")
    else:
        shutil.rmtree(directory)
    return 0
