"""`orbitq demo` (the README's first command): the main story, told against a real broker.

Owns: starting a throw-away broker as a real process (`orbitq init`, `orbitq serve` on the
embedded SQLite default in a temporary directory), driving a scenario through the real SDK over
gRPC, printing what happened for a person, and stopping the broker with SIGTERM.

It is a broker-side command (registered through the `orbitq.commands` entry point) only
because it launches the broker; every step of the story goes through the public SDK.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orbitq.clients import BrokerClient, FailedPreconditionError
from orbitq.clients.cli.output import format_table
from orbitq.clients.cli.registry import CommandError, CommandTree

STARTUP_SECONDS_MAX = 60.0
SHUTDOWN_SECONDS_MAX = 30.0


def register(tree: CommandTree) -> None:
    demo = tree.add(
        "demo",
        "run the orbitq story against a throw-away broker and show what happened",
        _demo,
    )
    demo.add_argument(
        "--keep", action="store_true", help="keep the broker's data directory afterwards"
    )


@dataclass
class RunningBroker:
    target: str
    operator_key: str
    verifier_key: str
    data_dir: Path
    # The broker's exit status once stopped (0: a clean shutdown).
    exit_code: int | None = None


def _orbitq(*args: str) -> list[str]:
    return [sys.executable, "-m", "orbitq.clients.cli.main", *args]


@contextmanager
def running_broker(directory: Path, *extra: str) -> Iterator[RunningBroker]:
    """`orbitq init` + `orbitq serve` in `directory`; SIGTERM and wait on the way out."""
    data_dir = directory / "broker"
    # Our own interpreter and module: no untrusted input reaches the command line.
    init = subprocess.run(  # noqa: S603
        [
            *_orbitq("init", "--data-dir", str(data_dir), "--origin", "demo.orbitq.local/ledger"),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        raise CommandError(f"orbitq init failed: {init.stderr.strip()}")
    identity = json.loads(init.stdout)
    log = (directory / "broker.log").open("w")
    server = subprocess.Popen(  # noqa: S603
        _orbitq("serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0", *extra),
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        if "listening on" not in first:
            raise CommandError(f"the broker did not start; its log is {directory / 'broker.log'}")
        target = first.strip().rsplit(" ", 1)[-1]
        broker = RunningBroker(
            target, identity["operator_api_key"], identity["verifier_key"], data_dir
        )
        yield broker
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(SHUTDOWN_SECONDS_MAX)
        except subprocess.TimeoutExpired:
            server.kill()
            code = server.wait()
        log.close()
    broker.exit_code = code


class Narrator:
    """Prints the story: numbered chapters, short paragraphs, tables."""

    def __init__(self) -> None:
        self._chapter = 0

    def chapter(self, title: str) -> None:
        self._chapter += 1
        heading = f" {self._chapter}. {title} "
        print()
        print(heading)
        print("─" * len(heading))

    def say(self, text: str) -> None:
        print(textwrap.fill(text, width=96))

    def table(self, rows: list[dict[str, object]], columns: list[str]) -> None:
        print(textwrap.indent(format_table(rows, columns), "  "))


def _balances(client: BrokerClient, tenants: list[str]) -> list[dict[str, object]]:
    rows = []
    for tenant in tenants:
        accounts = {account.kind: account for account in client.balances(tenant)}
        rows.append(
            {
                "tenant": tenant,
                "cpu core-s": accounts["cpu"].available,
                "storage MB-h": accounts["storage"].available,
                "link s": accounts["link"].available,
            }
        )
    return rows


def quota_story(broker: RunningBroker, trust_dir: Path, say: Narrator) -> None:
    """Tenants, minting, a transfer, an overdraft refused, and the signed ledger proving it."""
    columns = ["tenant", "cpu core-s", "storage MB-h", "link s"]
    with BrokerClient(
        broker.target,
        broker.operator_key,
        ledger_key=broker.verifier_key,
        trust_dir=trust_dir,
    ) as operator:
        say.chapter("Tenants and their quota")
        operator.create_tenant("aurora", "Aurora Earth Imaging")
        operator.create_tenant("borealis", "Borealis Climate Lab")
        operator.mint("aurora", cpu=7_200, storage=4_000, link=900)
        operator.mint("borealis", cpu=1_800, storage=1_000, link=300)
        say.say(
            "The operator created two tenants and minted quota tokens for them: CPU time in "
            "core-seconds, storage in megabyte-hours and ground-contact time in seconds. Each "
            "kind is its own double-entry ledger; the tokens came out of the treasury."
        )
        say.table(_balances(operator, ["aurora", "borealis"]), columns)
        aurora_key = operator.issue_api_key("tenant", "aurora", label="demo").api_key

        say.chapter("A transfer between tenants")
        with BrokerClient(
            broker.target, aurora_key, ledger_key=broker.verifier_key, trust_dir=trust_dir
        ) as aurora:
            outcomes = aurora.transfer("borealis", cpu=1_200, link=100)
            say.say(
                "Aurora, with its own API key, gave Borealis 1,200 core-seconds and 100 "
                "link-seconds in one call. Both kinds moved together (a linked pair of "
                f"transfers): {', '.join(o.result for o in outcomes)}."
            )
            say.table(_balances(operator, ["aurora", "borealis"]), columns)

            say.chapter("An overdraft, refused")
            try:
                aurora.transfer("borealis", cpu=100_000)
            except FailedPreconditionError as error:
                say.say(
                    f"Aurora tried to give away 100,000 core-seconds. The broker said no: {error}"
                )
            else:
                raise CommandError("the overdraft was accepted: the ledger is broken")
            say.say("Nothing moved:")
            say.table(_balances(operator, ["aurora", "borealis"]), columns)

            say.chapter("The signed ledger")
            transfer_id = outcomes[0].transfer.id if outcomes[0].transfer else ""
            proof = aurora.prove_transfer(transfer_id, wait_seconds=10)
            checkpoint = proof.checkpoint
            say.say(
                f"Every account creation and transfer is an entry in a Merkle log. Aurora's "
                f"client checked the broker's signed checkpoint (tree of {checkpoint.size} "
                f"entries, root {checkpoint.root_hash.hex()[:16]}…) against the broker's key, "
                f"and proved that its transfer is entry {proof.index} of that tree with "
                f"{len(proof.hashes)} hashes. A broker that rewrote history would be caught "
                "by this very check."
            )
            print()
            print(textwrap.indent(checkpoint.note, "    "))


def _demo(args: argparse.Namespace) -> int:
    directory = Path(tempfile.mkdtemp(prefix="orbitq-demo-"))
    say = Narrator()
    print("orbitq — the tokenized operating layer for space computing")
    print(f"(a throw-away broker in {directory}, on the embedded SQLite default)")
    with running_broker(directory) as broker:
        print(f"broker at {broker.target}, checkpoint key {broker.verifier_key}")
        quota_story(broker, directory / "trust", say)
    print()
    if broker.exit_code != 0:
        raise CommandError(
            f"the broker exited with status {broker.exit_code}; see {directory / 'broker.log'}"
        )
    print("The broker was stopped with SIGTERM and shut down cleanly.")
    if args.keep:
        print(f"Its data directory is kept: {broker.data_dir}")
    else:
        shutil.rmtree(directory)
    return 0
