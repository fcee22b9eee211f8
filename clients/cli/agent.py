"""`orbitq agent init` and `orbitq agent run`: the node agent on (or standing in for) a satellite.

Owns: these commands' arguments and output. `init` makes the data directory (0700) and the
node key (0600), measures the fuel rate, enrolls with the one-time token, pins the broker's
ticket key and stores the node credential (0600). `run` loads all that and steps the agent
until SIGTERM or SIGINT, which let the current step finish, then exit 0; it logs one line per
event. The agent itself is orbitq.clients.agent.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from orbitq.clients.cli.registry import CommandError, CommandTree

GROUND_LINK_NAMES = {1: "contacts", 2: "always"}


def register(tree: CommandTree) -> None:
    from orbitq.clients.cli.requests import register_audit

    register_audit(tree)  # `orbitq request audit`: the sandbox's command on the ground
    tree.group("agent", "the node agent: enroll a node, then run its tickets")
    init = tree.add(
        "agent init",
        "create the node key, calibrate, enroll with a one-time token, pin the ticket key",
        _init,
    )
    init.add_argument("--node", required=True, help="the node id this agent acts for")
    init.add_argument("--token", required=True, help="the token `orbitq node enroll` printed")
    init.add_argument("--target", required=True, metavar="HOST:PORT", help="the broker")
    init.add_argument("--data-dir", required=True, type=Path, help="the agent's directory")
    init.add_argument("--tls-ca", help="PEM file of the CA of the broker's certificate")
    init.add_argument(
        "--calibration-rounds", type=int, default=5, help="rounds of the fuel-rate measure"
    )
    run = tree.add("agent run", "run the agent until SIGTERM/SIGINT", _run)
    run.add_argument("--data-dir", required=True, type=Path, help="the agent's directory")
    run.add_argument(
        "--ground-link",
        choices=("contacts", "always"),
        help="always: try the broker at any time (a ground stand-in); default: as enrolled",
    )
    run.add_argument(
        "--clock",
        default="system",
        help="system, or shifted:<RFC 3339 start>[x<rate>][@<anchor>], as the broker's",
    )
    run.add_argument(
        "--poll-seconds",
        type=int,
        default=10,
        help="how often to pull tickets when linked, and to try the broker when no"
        " contact window is known yet",
    )


def _log(line: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    print(f"{stamp} {line}", flush=True)


def _init(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from orbitq.clients import TLSConfig
    from orbitq.clients.agent import calibrate
    from orbitq.clients.agent.datadir import AgentConfig, DataDir
    from orbitq.clients.agent.link import enroll
    from orbitq.clients.agent.sandbox import runtime
    from orbitq.ledger.note import key_id, parse_verifier_key
    from orbitq.v1 import agent_pb2

    data = DataDir(args.data_dir)
    data.create()
    # A key from an init that never finished is reused: a retry with the same token and key
    # re-issues the credential. After a finished init, a new init rotates the key.
    if data.key_path.exists() and not data.config_path.exists():
        key = data.key()
    else:
        key = Ed25519PrivateKey.generate()
        data.write_key(key)
    public_key = key.public_key().public_bytes_raw()
    rate = calibrate.fuel_per_core_second(args.calibration_rounds)
    tls = TLSConfig.from_ca_file(args.tls_ca) if args.tls_ca else None
    response = enroll(
        args.target,
        agent_pb2.EnrollNodeRequest(
            node=args.node,
            public_key=public_key,
            enrollment_token=args.token,
            fuel_per_core_second=rate,
            runtime=runtime(),
        ),
        tls=tls,
    )
    parse_verifier_key(response.ticket_verifier_key)  # refuse a malformed key before pinning
    data.write_credential(response.api_key)
    data.write_config(
        AgentConfig(
            node=args.node,
            target=args.target,
            ticket_verifier_key=response.ticket_verifier_key,
            issuer=response.issuer,
            ground_link=GROUND_LINK_NAMES.get(response.ground_link, "contacts"),
            fuel_per_core_second=rate,
            runtime=runtime(),
            api_key_id=response.api_key_id,
            tls_ca=str(Path(args.tls_ca).resolve()) if args.tls_ca else "",
        )
    )
    print(f"node {args.node} enrolled (entry {response.entry_index} of the signed log)")
    print(f"  node key id   {key_id(args.node, public_key).hex()}")
    print(f"  fuel rate     {rate:,} fuel per core-second ({runtime()})")
    print(f"  ticket key    {response.ticket_verifier_key}")
    print(f"  ground link   {GROUND_LINK_NAMES.get(response.ground_link, 'contacts')}")
    print(f"  data dir      {data.path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from orbitq.clients import TLSConfig
    from orbitq.clients.agent.agent import Agent, AgentSettings
    from orbitq.clients.agent.clock import clock_of
    from orbitq.clients.agent.datadir import DataDir
    from orbitq.clients.agent.isolate import run_isolated
    from orbitq.clients.agent.link import GrpcLink
    from orbitq.clients.agent.store import AgentStore
    from orbitq.ledger.note import parse_verifier_key
    from orbitq.ledger.tickets import TicketVerifier

    data = DataDir(args.data_dir)
    data.check()
    config = data.config()
    try:
        clock = clock_of(args.clock)
    except ValueError as error:
        raise CommandError(str(error)) from None
    ticket_key = parse_verifier_key(config.ticket_verifier_key)
    settings = AgentSettings(
        node=config.node,
        key=data.key(),
        verifier=TicketVerifier(ticket_key.public_key_raw, ticket_key.key_id, config.issuer),
        fuel_per_core_second=config.fuel_per_core_second,
        runtime=config.runtime,
        ground_link_always=(args.ground_link or config.ground_link) == "always",
        pull_interval_seconds=max(args.poll_seconds, 1),
        probe_interval_seconds=max(args.poll_seconds, 1),
    )
    tls = TLSConfig.from_ca_file(config.tls_ca) if config.tls_ca else None
    link = GrpcLink(config.target, data.credential(), tls=tls)
    store = AgentStore(data.db_path)
    agent = Agent(
        settings,
        store,
        link,
        data.path,
        lambda job: run_isolated(job, data.modules),
        clock=clock,
        log=_log,
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        _log(f"signal {signal.Signals(signum).name}: stopping after this step")
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    _log(
        f"agent for node {config.node} running: broker {config.target},"
        f" ground link {'always' if settings.ground_link_always else 'contacts'}"
    )
    try:
        agent.run_forever(stop, clock_rate=clock.rate)
    finally:
        store.close()
        link.close()
    _log("agent stopped")
    sys.stdout.flush()
    return 0
