"""The CLI forms of node agents, against a real broker on loopback: `orbitq node enroll`,
`orbitq workload push`, `orbitq request submit --workload sha256:… --input FILE`, `orbitq
request status --json` showing the receipt digest, `orbitq request result --out` checked
against the receipt, and `orbitq request receipt`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from orbitq.clients.cli.main import EXIT_BROKER_ERROR, main
from orbitq.services.auth import SYSTEM
from orbitq.services.clock import SimulatedClock
from orbitq.services.identity.api_keys import Role
from orbitq.services.requests import RequestState
from tests.agents.support import HELLO_WAT, TestAgent, agent_world, module_bytes
from tests.conftest import ServerHandle
from tests.requests.sky import at

S = RequestState
JOB = [
    "--cpu-millicores", "1000", "--run-seconds", "600", "--storage-mb", "500",
    "--output-mb", "1", "--deadline", "2025-12-06T06:00:00Z",
]  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_enroll_push_submit_and_fetch_the_result_from_the_cli(
    server: ServerHandle,
    clock: SimulatedClock,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    with agent_world(server, clock) as world:
        operator = ["--target", server.target, "--api-key", server.operator_key]
        key = world.broker.tenants.issue_key(SYSTEM, Role.TENANT, "acme", "", "cli").token
        acme = ["--target", server.target, "--api-key", key]
        # The operator makes a token; the node's agent enrolls (again: a new key) with it.
        node = world.agent.node
        code, out, err = run(
            capsys, "node", "enroll", node, "--ground-link", "always", "--ttl", "600", *operator
        )
        assert code == 0, err
        token = out.strip()
        assert token.startswith("oqe_")
        assert "expires" in err
        agent = TestAgent(world.channel, node, "")
        agent.enroll(token)
        # The tenant pushes a module: its content address is printed alone on stdout.
        wasm = tmp_path / "hello.wasm"
        wasm.write_bytes(module_bytes())
        code, out, _ = run(capsys, "workload", "push", str(wasm), *acme)
        assert code == 0
        assert out.strip() == "sha256:" + hashlib.sha256(module_bytes()).hexdigest()
        text = tmp_path / "hello.wat"
        text.write_text(HELLO_WAT)
        code, _, err = run(capsys, "workload", "push", str(text), *acme)
        assert code == EXIT_BROKER_ERROR
        assert "not a WebAssembly binary" in err
        # Submit with an input file: pushed first, input_mb from its size.
        data = tmp_path / "tile.bin"
        data.write_bytes(bytes(1_200_000))
        code, out, err = run(
            capsys, "request", "submit", *JOB, "--workload", out_digest(module_bytes()),
            "--input", str(data), "--node", node, "--json", *acme,
        )  # fmt: skip
        assert code == 0, err
        request = json.loads(out)["request"]
        assert request["spec"]["input"] == out_digest(data.read_bytes())
        assert request["spec"]["input_mb"] == 2
        # The node's agent runs it and reports.
        broker = world.broker
        assert request["id"] in broker.scheduling.run_cycle().placed
        placement = world.stored(request["id"]).placement
        assert placement is not None
        clock.set(at(placement.uplink.at))
        (signed,) = agent.pull().tickets
        ticket = agent.open(signed.envelope, placement.uplink.at)
        assert ticket.input_bytes == 1_200_000
        clock.set(at(placement.start))
        broker.scheduling.advance()
        result = b"cloud mask" * 100
        agent.upload(request["id"], result)
        clock.set(at(placement.end))
        receipt = agent.receipt(signed.envelope, ticket, result=result)
        agent.report(receipt)
        # status --json shows the receipt digest; result and receipt come from the broker.
        code, out, _ = run(capsys, "request", "status", request["id"], "--json", *acme)
        shown = json.loads(out)
        assert shown["state"] == "completed"
        assert shown["receipt_digest"] == hashlib.sha256(receipt).hexdigest()
        assert shown["outcome"] == "ok"
        assert shown["result"] == out_digest(result)
        target = tmp_path / "result.bin"
        code, out, err = run(
            capsys, "request", "result", request["id"], "--out", str(target), *acme
        )
        assert code == 0, err
        assert target.read_bytes() == result
        code, out, _ = run(capsys, "request", "receipt", request["id"], "--json", *acme)
        facts = json.loads(out)
        assert facts["digest"] == hashlib.sha256(receipt).hexdigest()
        assert (facts["node"], facts["outcome"]) == (node, "ok")
        assert facts["result"] == out_digest(result)
        assert world.stored(request["id"]).state is S.COMPLETED
        # --verify proves it against the signed log (and exits 0).
        broker.sign_checkpoint()
        trust = ["--trust-dir", str(tmp_path / "trust")]
        code, out, err = run(
            capsys, "request", "receipt", request["id"], "--verify", "--json", *trust, *acme
        )
        assert code == 0, err
        proved = json.loads(out)
        assert proved["verified"]
        assert proved["digest"] == hashlib.sha256(receipt).hexdigest()
        assert proved["settled"] == shown["settled"]


def out_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
