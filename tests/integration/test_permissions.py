"""Who may call what: every RPC of the contract, called by six kinds of caller over a real
broker on loopback, on SQLite and PostgreSQL.

`TABLE` is the executable form of the role tables in the domain services' docstrings
(services/tenants.py, quota.py, budgets/service.py, usage.py, requests/service.py,
constellation/service.py, signed_log.py).
It names every RPC the generated descriptors declare exactly once, so a new RPC cannot ship
without a rule. Each row has a request builder, given the subject a caller acts on, and the
outcome for each caller:

    operator   the operator key, acting on tenant acme and node N1
    tenant     acme's key, acting on acme's things (and node N1)
    tenant*    acme's key, acting on globex's things (and node N2)
    node       the node key of N1, acting for N1 (and tenant acme)
    node*      the node key of N1, acting for N2 (and tenant globex)
    no key     no credentials, acting on acme and N1

Outcomes: OK (the call succeeds: the requests are valid), DENIED (PERMISSION_DENIED), HIDDEN
(NOT_FOUND: another tenant's request is not revealed to exist, a blob no ticket of the node
names), NO_KEY (UNAUTHENTICATED), REFUSED (INVALID_ARGUMENT: a receipt the calling node's key
did not sign).

The nodes N1 and N2 have enrolled agents (the ground link "always": no contact gating here);
each tenant has a module pushed and a request placed on its node (acme's on N1, globex's on
N2), whose ticket that node's agent pulled and whose run has begun.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import itertools
import json
import pkgutil
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

import orbitq.v1
from orbitq.clients import BrokerClient
from orbitq.ledger.model import Kind
from orbitq.services.auth import SYSTEM, Principal
from orbitq.services.broker import Broker
from orbitq.services.clock import SimulatedClock
from orbitq.services.errors import InvalidArgumentError, PermissionDeniedError
from orbitq.services.identity.api_keys import Role
from orbitq.services.requests import RequestSpec, RequestState
from orbitq.services.servicers.requests import spec_to_proto
from orbitq.v1 import (
    admin_pb2,
    agent_pb2,
    common_pb2,
    constellation_pb2,
    ledger_pb2,
    quota_pb2,
    request_pb2,
)
from tests.agents.support import HELLO_WAT, RATE, RUNTIME, TestAgent, module_bytes
from tests.conftest import EPOCH, ServerHandle
from tests.integration.sky import STATION_IDS, starlink_text, stations_csv
from tests.requests.sky import MINTED, T0, at, build_world, spec, tenant

OK = grpc.StatusCode.OK
DENIED = grpc.StatusCode.PERMISSION_DENIED
HIDDEN = grpc.StatusCode.NOT_FOUND
NO_KEY = grpc.StatusCode.UNAUTHENTICATED
REFUSED = grpc.StatusCode.INVALID_ARGUMENT

OWN, OTHER = "acme", "globex"
CALLERS = ("operator", "tenant", "tenant*", "node", "node*", "no key")
SERVICERS = Path(__file__).resolve().parents[2] / "services" / "servicers"


@dataclass(frozen=True)
class Subject:
    """What a caller's request names: a tenant and a node."""

    tenant: str
    node: str

    @property
    def counterpart(self) -> str:
        """The tenant on the other side of a transfer."""
        return OTHER if self.tenant == OWN else OWN


@dataclass
class World:
    """Two tenants with tokens, a module and requests each, three nodes (two with agents),
    stations, contacts, keys."""

    broker: Broker
    nodes: tuple[str, str, str]
    keys: dict[str, str | None]
    requests: dict[str, str]
    workloads: dict[str, str] = field(default_factory=dict)
    # Per tenant, its request running on its node, and that node's agent.
    running: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    agents: dict[str, TestAgent] = field(default_factory=dict)
    names: Iterator[int] = field(default_factory=itertools.count)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.names)}"

    def spec(self, owner: str, **changes: Any) -> RequestSpec:
        """A request of `owner` running its module, due by the end of the world's plan."""
        fields: dict[str, Any] = {"workload": self.workloads[owner], "deadline": T0 + 11 * 3600}
        return replace(spec(), **{**fields, **changes})

    def submitted(self, owner: str) -> str:
        """A new pending request of `owner` (made in-process)."""
        stored, _ = self.broker.requests.submit(tenant(owner), self.spec(owner), self.fresh("k"))
        return stored.id

    def account(self, owner: str) -> int:
        return self.broker.quota.account_ids(owner)[Kind.CPU]


Build = Callable[[World, Subject], Message]


def _id() -> bytes:
    return secrets.token_bytes(16)


def _cpu(amount: int) -> common_pb2.Amounts:
    return common_pb2.Amounts(cpu=amount)


# -- requests, one builder per RPC (and per variant) ---------------------------------------------


def create_tenant(w: World, s: Subject) -> Message:
    return admin_pb2.CreateTenantRequest(name=w.fresh("new-"))


def list_tenants(w: World, s: Subject) -> Message:
    return admin_pb2.ListTenantsRequest()


def issue_tenant_key(w: World, s: Subject) -> Message:
    return admin_pb2.IssueApiKeyRequest(role=common_pb2.ROLE_TENANT, tenant=s.tenant)


def issue_node_key(w: World, s: Subject) -> Message:
    return admin_pb2.IssueApiKeyRequest(role=common_pb2.ROLE_NODE, node=s.node)


def issue_operator_key(w: World, s: Subject) -> Message:
    return admin_pb2.IssueApiKeyRequest(role=common_pb2.ROLE_OPERATOR)


def revoke_key(w: World, s: Subject) -> Message:
    spare = w.broker.tenants.issue_key(SYSTEM, Role.TENANT, s.tenant, "", "spare")
    return admin_pb2.RevokeApiKeyRequest(key_id=spare.key.key_id)


def mint(w: World, s: Subject) -> Message:
    return quota_pb2.MintRequest(tenant=s.tenant, amounts=_cpu(1), id=_id())


def balances(w: World, s: Subject) -> Message:
    return quota_pb2.GetBalancesRequest(tenant=s.tenant)


def system_balances(w: World, s: Subject) -> Message:
    return quota_pb2.GetBalancesRequest(system=True)


def transfer(w: World, s: Subject) -> Message:
    return quota_pb2.TransferRequest(
        from_tenant=s.tenant, to_tenant=s.counterpart, amounts=_cpu(1), id=_id()
    )


def list_transfers(w: World, s: Subject) -> Message:
    return quota_pb2.ListTransfersRequest(tenant=s.tenant)


def create_transfers(w: World, s: Subject) -> Message:
    move = quota_pb2.Transfer(
        id=_id(),
        debit_account_id=w.account(s.tenant),
        credit_account_id=w.account(s.counterpart),
        amount=1,
        kind=common_pb2.RESOURCE_KIND_CPU,
        code=quota_pb2.TRANSFER_CODE_TRANSFER,
    )
    return quota_pb2.CreateTransfersRequest(transfers=[move])


def grant_budget(w: World, s: Subject) -> Message:
    return quota_pb2.GrantBudgetRequest(
        tenant=s.tenant, amounts=_cpu(1), period=quota_pb2.BUDGET_PERIOD_DAY
    )


def list_budgets(w: World, s: Subject) -> Message:
    return quota_pb2.ListBudgetsRequest(tenant=s.tenant)


def usage_report(w: World, s: Subject) -> Message:
    return quota_pb2.GetUsageReportRequest(
        tenant=s.tenant,
        since_ns=1_700_000_000 * 10**9,
        until_ns=1_700_086_400 * 10**9,
        by=quota_pb2.USAGE_GROUPING_DAY,
    )


def quote(w: World, s: Subject) -> Message:
    return request_pb2.QuoteRequest(spec=spec_to_proto(w.spec(s.tenant)))


def quote_eta(w: World, s: Subject) -> Message:
    # Where it would fit, with the shortfall counted against the subject tenant's balance.
    return request_pb2.QuoteRequest(spec=spec_to_proto(w.spec(s.tenant)), eta=True, tenant=s.tenant)


def explain_request(w: World, s: Subject) -> Message:
    return request_pb2.ExplainRequestRequest(id=w.requests[s.tenant])


def submit(w: World, s: Subject) -> Message:
    return request_pb2.SubmitRequest(
        spec=spec_to_proto(w.spec(s.tenant)), tenant=s.tenant, idempotency_key=w.fresh("submit-")
    )


def get_request(w: World, s: Subject) -> Message:
    return request_pb2.GetRequestRequest(id=w.requests[s.tenant])


def list_requests(w: World, s: Subject) -> Message:
    return request_pb2.ListRequestsRequest(tenant=s.tenant)


def cancel_request(w: World, s: Subject) -> Message:
    return request_pb2.CancelRequestRequest(id=w.submitted(s.tenant))


def watch_request(w: World, s: Subject) -> Message:
    # A cancelled request: its watch sends the transitions and ends.
    request_id = w.submitted(s.tenant)
    w.broker.requests.cancel(tenant(s.tenant), request_id)
    return request_pb2.WatchRequestRequest(id=request_id)


def import_nodes(w: World, s: Subject) -> Message:
    return constellation_pb2.ImportNodesRequest(text=starlink_text(3))


def list_nodes(w: World, s: Subject) -> Message:
    return constellation_pb2.ListNodesRequest()


def set_node_state(w: World, s: Subject) -> Message:
    return constellation_pb2.SetNodeStateRequest(
        id=s.node, state=constellation_pb2.NODE_STATE_READY
    )


def upsert_stations(w: World, s: Subject) -> Message:
    return constellation_pb2.UpsertStationRequest(stations_text=stations_csv())


def list_stations(w: World, s: Subject) -> Message:
    return constellation_pb2.ListStationsRequest()


def list_contacts(w: World, s: Subject) -> Message:
    return constellation_pb2.ListContactsRequest(node=s.node)


def import_contact_plan(w: World, s: Subject) -> Message:
    # Sets a station back to its computed contacts: valid, and changes nothing the world uses.
    return constellation_pb2.ImportContactPlanRequest(
        text=json.dumps({"stations": {STATION_IDS[0]: "computed"}})
    )


def enrollment_token(w: World, s: Subject) -> Message:
    return constellation_pb2.CreateEnrollmentTokenRequest(node=s.node)


def enroll_node(w: World, s: Subject) -> Message:
    # The third node, which no other row uses: enrolling rotates the node's credential.
    node = w.nodes[2]
    made = w.broker.agents.create_enrollment_token(SYSTEM, node, "always", 0)
    return agent_pb2.EnrollNodeRequest(
        node=node,
        public_key=Ed25519PrivateKey.generate().public_key().public_bytes_raw(),
        enrollment_token=made.token,
        fuel_per_core_second=RATE,
        runtime=RUNTIME,
    )


def pull_tickets(w: World, s: Subject) -> Message:
    return agent_pb2.PullTicketsRequest(max_tickets=1)


def fetch_blob(w: World, s: Subject) -> Message:
    # The subject tenant's module, named by the ticket of the subject node.
    return agent_pb2.FetchBlobRequest(digest=w.workloads[s.tenant])


RESULT = b"the result"


def open_result(w: World, s: Subject) -> Message:
    request_id, _ = w.running[s.tenant]
    return agent_pb2.OpenResultRequest(
        request_id=request_id, size=len(RESULT), sha256=hashlib.sha256(RESULT).digest()
    )


def put_result_chunk(w: World, s: Subject) -> Message:
    request_id, _ = w.running[s.tenant]
    w.agents[s.tenant].open_result(request_id, RESULT)
    return agent_pb2.PutResultChunkRequest(request_id=request_id, offset=0, data=RESULT)


def report_receipt(w: World, s: Subject) -> Message:
    # A receipt of the subject tenant's run, signed by the agent of the node it ran on.
    _, envelope = w.running[s.tenant]
    agent = w.agents[s.tenant]
    ticket = agent.read(envelope)
    return agent_pb2.ReportReceiptRequest(receipt=agent.receipt(envelope, ticket, result=None))


def heartbeat(w: World, s: Subject) -> Message:
    return agent_pb2.HeartbeatRequest()


def push_workload(w: World, s: Subject) -> Message:
    return request_pb2.PushWorkloadRequest(module=module_bytes(), tenant=s.tenant)


def push_input(w: World, s: Subject) -> Message:
    return request_pb2.PushInputRequest(data=b"input", tenant=s.tenant)


def get_blob(w: World, s: Subject) -> Message:
    return request_pb2.GetBlobRequest(digest=w.workloads[s.tenant])


def get_evidence(w: World, s: Subject) -> Message:
    return request_pb2.GetEvidenceRequest(id=w.running[s.tenant][0])


def checkpoint(w: World, s: Subject) -> Message:
    return ledger_pb2.GetCheckpointRequest()


def fresh_checkpoint(w: World, s: Subject) -> Message:
    return ledger_pb2.GetCheckpointRequest(fresh=True)


def entries(w: World, s: Subject) -> Message:
    return ledger_pb2.GetEntriesRequest(start=0, end=0, page_size=10)


def inclusion_proof(w: World, s: Subject) -> Message:
    return ledger_pb2.GetInclusionProofRequest(index=0)


def consistency_proof(w: World, s: Subject) -> Message:
    return ledger_pb2.GetConsistencyProofRequest(from_size=1)


def public_key(w: World, s: Subject) -> Message:
    return ledger_pb2.GetPublicKeyRequest()


@dataclass(frozen=True)
class Row:
    service: str
    method: str
    build: Build
    outcomes: tuple[grpc.StatusCode, ...]

    @property
    def path(self) -> str:
        return f"/orbitq.v1.{self.service}Service/{self.method}"


def service(name: str, *rows: tuple[Any, ...]) -> tuple[Row, ...]:
    """The rows of one service: (method, request builder, one outcome per caller)."""
    built = []
    for method, build, *outcomes in rows:
        assert len(outcomes) == len(CALLERS), method
        built.append(Row(name, method, build, tuple(outcomes)))
    return tuple(built)


# fmt: off
TABLE = (
    *service(
        "Admin",
        # method              request            operator tenant tenant* node  node*   no key
        ("CreateTenant",      create_tenant,     OK,    DENIED, DENIED, DENIED, DENIED, NO_KEY),
        ("ListTenants",       list_tenants,      OK,    OK,     OK,     DENIED, DENIED, NO_KEY),
        ("IssueApiKey",       issue_tenant_key,  OK,    OK,     DENIED, DENIED, DENIED, NO_KEY),
        ("RevokeApiKey",      revoke_key,        OK,    OK,     DENIED, DENIED, DENIED, NO_KEY),
    ),
    *service(
        "Quota",
        ("Mint",              mint,              OK,    DENIED, DENIED, DENIED, DENIED, NO_KEY),
        ("GetBalances",       balances,          OK,    OK,     DENIED, DENIED, DENIED, NO_KEY),
        ("Transfer",          transfer,          OK,    OK,     DENIED, DENIED, DENIED, NO_KEY),
        ("ListTransfers",     list_transfers,    OK,    OK,     DENIED, DENIED, DENIED, NO_KEY),
        ("CreateTransfers",   create_transfers,  OK,    DENIED, DENIED, DENIED, DENIED, NO_KEY),
        ("GrantBudget",       grant_budget,      OK,    DENIED, DENIED, DENIED, DENIED, NO_KEY),
        ("ListBudgets",       list_budgets,      OK,    OK,     DENIED, DENIED, DENIED, NO_KEY),
        ("GetUsageReport",    usage_report,      OK,    OK,     DENIED, DENIED, DENIED, NO_KEY),
    ),
    *service(
        "Request",
        ("Quote",             quote,             OK,    OK,     OK,     DENIED, DENIED, NO_KEY),
        ("Submit",            submit,            OK,    OK,     DENIED, DENIED, DENIED, NO_KEY),
        ("GetRequest",        get_request,       OK,    OK,     HIDDEN, DENIED, DENIED, NO_KEY),
        # The issue's rule (14): asking about another tenant's request is PERMISSION_DENIED.
        ("ExplainRequest",    explain_request,   OK,    OK,     DENIED, DENIED, DENIED, NO_KEY),
        ("ListRequests",      list_requests,     OK,    OK,     DENIED, DENIED, DENIED, NO_KEY),
        ("CancelRequest",     cancel_request,    OK,    OK,     HIDDEN, DENIED, DENIED, NO_KEY),
        ("WatchRequest",      watch_request,     OK,    OK,     HIDDEN, DENIED, DENIED, NO_KEY),
        ("PushWorkload",      push_workload,     OK,    OK,     DENIED, DENIED, DENIED, NO_KEY),
        ("PushInput",         push_input,        OK,    OK,     DENIED, DENIED, DENIED, NO_KEY),
        ("GetBlob",           get_blob,          OK,    OK,     HIDDEN, DENIED, DENIED, NO_KEY),
        ("GetEvidence",       get_evidence,      OK,    OK,     HIDDEN, DENIED, DENIED, NO_KEY),
    ),
    *service(
        "Constellation",
        ("ImportNodes",       import_nodes,      OK,    DENIED, DENIED, DENIED, DENIED, NO_KEY),
        ("ListNodes",         list_nodes,        OK,    OK,     OK,     OK,     OK,     NO_KEY),
        ("SetNodeState",      set_node_state,    OK,    DENIED, DENIED, DENIED, DENIED, NO_KEY),
        ("UpsertStation",     upsert_stations,   OK,    DENIED, DENIED, DENIED, DENIED, NO_KEY),
        ("ListStations",      list_stations,     OK,    OK,     OK,     OK,     OK,     NO_KEY),
        ("ListContacts",      list_contacts,     OK,    OK,     OK,     OK,     OK,     NO_KEY),
        ("CreateEnrollmentToken", enrollment_token, OK, DENIED, DENIED, DENIED, DENIED, NO_KEY),
        ("ImportContactPlan", import_contact_plan, OK,  DENIED, DENIED, DENIED, DENIED, NO_KEY),
    ),
    # Node keys, each for its own node; EnrollNode needs no key (its token is the credential).
    *service(
        "NodeAgent",
        ("EnrollNode",        enroll_node,       OK,    OK,     OK,     OK,     OK,     OK),
        ("PullTickets",       pull_tickets,      DENIED, DENIED, DENIED, OK,    OK,     NO_KEY),
        ("FetchBlob",         fetch_blob,        DENIED, DENIED, DENIED, OK,    HIDDEN, NO_KEY),
        ("OpenResult",        open_result,       DENIED, DENIED, DENIED, OK,    DENIED, NO_KEY),
        ("PutResultChunk",    put_result_chunk,  DENIED, DENIED, DENIED, OK,    DENIED, NO_KEY),
        ("ReportReceipt",     report_receipt,    DENIED, DENIED, DENIED, OK,    REFUSED, NO_KEY),
        ("Heartbeat",         heartbeat,         DENIED, DENIED, DENIED, OK,    OK,     NO_KEY),
    ),
    *service(
        "Ledger",
        ("GetCheckpoint",     checkpoint,        OK,    OK,     OK,     OK,     OK,     NO_KEY),
        ("GetEntries",        entries,           OK,    OK,     OK,     OK,     OK,     NO_KEY),
        ("GetInclusionProof", inclusion_proof,   OK,    OK,     OK,     OK,     OK,     NO_KEY),
        ("GetConsistencyProof", consistency_proof, OK,  OK,     OK,     OK,     OK,     NO_KEY),
        ("GetPublicKey",      public_key,        OK,    OK,     OK,     OK,     OK,     NO_KEY),
    ),
)

# Rules inside one RPC that its row above does not reach.
VARIANTS = (
    *service(
        "Admin",
        ("IssueApiKey",       issue_node_key,    OK,    DENIED, DENIED, DENIED, DENIED, NO_KEY),
        ("IssueApiKey",       issue_operator_key, OK,   DENIED, DENIED, DENIED, DENIED, NO_KEY),
    ),
    *service(
        "Quota",
        ("GetBalances",       system_balances,   OK,    DENIED, DENIED, DENIED, DENIED, NO_KEY),
    ),
    *service(
        "Request",
        ("Quote",             quote_eta,         OK,    OK,     DENIED, DENIED, DENIED, NO_KEY),
    ),
    *service(
        "Ledger",
        ("GetCheckpoint",     fresh_checkpoint,  OK,    DENIED, DENIED, DENIED, DENIED, NO_KEY),
    ),
)
# fmt: on


def declared_methods() -> dict[str, MethodDescriptor]:
    """Every RPC of every service in the generated orbitq.v1 modules, by path."""
    methods = {}
    for info in pkgutil.iter_modules(orbitq.v1.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"orbitq.v1.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                methods[f"/{service.full_name}/{method.name}"] = method
    return methods


def test_the_table_names_every_rpc_exactly_once() -> None:
    named = [entry.path for entry in TABLE]
    assert len(set(named)) == len(named), "an RPC has two rows"
    assert set(named) == set(declared_methods())
    assert len({path.split("/")[1] for path in named}) == 6
    assert {entry.path for entry in VARIANTS} <= set(named)


def _call(
    channel: grpc.Channel, method: MethodDescriptor, path: str, request: Message, key: str | None
) -> grpc.StatusCode:
    assert request.DESCRIPTOR is method.input_type, path
    reply = GetMessageClass(method.output_type).FromString
    metadata = (("authorization", f"Bearer {key}"),) if key else None
    send = type(request).SerializeToString
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, send, reply)
            assert list(stream(request, timeout=30, metadata=metadata)), path
        else:
            channel.unary_unary(path, send, reply)(request, timeout=30, metadata=metadata)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


def _world(server: ServerHandle, clock: SimulatedClock, channel: grpc.Channel) -> World:
    broker = server.broker
    build_world(broker, satellites=3, hours=12)
    # The two nodes that see the ground most in the requests' window run them.
    contacts = broker.constellation.contacts_between(EPOCH, EPOCH + timedelta(hours=11))
    first, second, third = sorted(
        (node.id for node in broker.constellation.nodes()),
        key=lambda n: -sum(1 for c in contacts if c.node == n),
    )
    # Keys are issued the way an operator does it: IssueApiKey over gRPC; the node's key is
    # the credential its agent got at enrollment.
    with BrokerClient(server.target, server.operator_key, timeout=30) as admin:
        for name in (OWN, OTHER):
            admin.create_tenant(name)
            admin.mint(
                name, cpu=MINTED[Kind.CPU], storage=MINTED[Kind.STORAGE], link=MINTED[Kind.LINK]
            )
        acme = admin.issue_api_key("tenant", OWN).api_key
    world = World(broker, (first, second, third), {}, {})
    # Each tenant's own module (different bytes), and a request of each running on its node.
    memory = {OWN: 1, OTHER: 2}
    for name, node in ((OWN, first), (OTHER, second)):
        agent = TestAgent(channel, node, broker.config.origin)
        agent.enroll(broker.agents.create_enrollment_token(SYSTEM, node, "always", 0).token)
        world.agents[name] = agent
        module = module_bytes(
            HELLO_WAT.replace(
                '(memory (export "memory") 1)', f'(memory (export "memory") {memory[name]})'
            )
        )
        world.workloads[name] = broker.blobs.push_workload(tenant(name), module, "").digest
    placed = {}
    for name, node in ((OWN, first), (OTHER, second)):
        request, _ = broker.requests.submit(tenant(name), world.spec(name, node_ids=(node,)), "r")
        placed[name] = request.id
    assert set(placed.values()) <= set(broker.scheduling.run_cycle().placed)
    placements = {}
    for name, request_id in placed.items():
        stored = broker.requests.stored(request_id)
        assert stored is not None
        assert stored.placement is not None
        placements[name] = stored.placement
    # Each ticket pulled at its uplink, then both runs begun.
    for name, placement in sorted(placements.items(), key=lambda item: item[1].uplink.at):
        clock.set(max(clock.now(), at(placement.uplink.at)))
        (signed,) = [t for t in world.agents[name].pull().tickets if t.request_id == placed[name]]
        world.running[name] = (placed[name], signed.envelope)
    clock.set(max(clock.now(), at(max(p.start for p in placements.values()))))
    broker.scheduling.advance()
    for request_id in placed.values():
        stored = broker.requests.stored(request_id)
        assert stored is not None
        assert stored.state is RequestState.RUNNING
    world.keys.update(
        {
            "operator": server.operator_key,
            "tenant": acme,
            "node": world.agents[OWN].api_key,
            "no key": None,
        }
    )
    world.requests = {name: world.submitted(name) for name in (OWN, OTHER)}
    broker.sign_checkpoint()
    return world


def _subject(world: World, caller: str) -> Subject:
    own, other, _ = world.nodes
    return Subject(OTHER, other) if caller.endswith("*") else Subject(OWN, own)


def test_every_rpc_answers_each_caller_as_the_table_says(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    methods = declared_methods()
    mismatches = []
    cells = 0
    with grpc.insecure_channel(server.target) as channel:
        world = _world(server, clock, channel)
        for entry in (*TABLE, *VARIANTS):
            for caller, expected in zip(CALLERS, entry.outcomes, strict=True):
                request = entry.build(world, _subject(world, caller))
                key = world.keys[caller.rstrip("*")]
                got = _call(channel, methods[entry.path], entry.path, request, key)
                cells += 1
                if got is not expected:
                    mismatches.append(
                        f"{entry.path} ({entry.build.__name__}) by {caller}: expected "
                        f"{expected.name}, got {got.name}"
                    )
    assert mismatches == []
    assert cells == len(CALLERS) * (len(TABLE) + len(VARIANTS))


# -- the helpers every check is written with -----------------------------------------------------


def test_scopes_of_each_role() -> None:
    operator = Principal("op", Role.OPERATOR)
    acme = Principal("t", Role.TENANT, tenant="acme")
    node = Principal("n", Role.NODE, node="44714")
    assert acme.tenant_scope("", "read") == acme.tenant_scope("acme", "read") == "acme"
    assert operator.tenant_scope("globex", "read") == "globex"
    assert node.node_scope("", "report for") == node.node_scope("44714", "report for") == "44714"
    assert operator.node_scope("44718", "report for") == "44718"
    with pytest.raises(PermissionDeniedError, match="key of tenant 'acme' cannot read tenant"):
        acme.tenant_scope("globex", "read")
    with pytest.raises(PermissionDeniedError, match="key of node '44714' cannot report for node"):
        node.node_scope("44718", "report for")
    with pytest.raises(PermissionDeniedError, match="a node key cannot read a tenant"):
        node.tenant_scope("acme", "read")
    with pytest.raises(PermissionDeniedError, match="a tenant key cannot report for a node"):
        acme.node_scope("44714", "report for")
    with pytest.raises(InvalidArgumentError, match="name the node to report for"):
        operator.node_scope("", "report for")
    assert operator.acts_for("acme")
    assert operator.acts_for(None)
    assert acme.acts_for("acme")
    assert not acme.acts_for("globex")
    assert not acme.acts_for(None)
    assert not node.acts_for("acme")
    assert SYSTEM.is_operator
    assert SYSTEM.key_id == "system"


def test_a_principal_belongs_to_a_tenant_or_node_exactly_by_role() -> None:
    with pytest.raises(AssertionError):
        Principal("t", Role.TENANT)
    with pytest.raises(AssertionError):
        Principal("n", Role.NODE, tenant="acme")
    with pytest.raises(AssertionError):
        Principal("o", Role.OPERATOR, node="44714")


CHECKS = {"require_operator", "require_role", "tenant_scope", "node_scope", "acts_for"}


def _checks_in(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in CHECKS | {"is_operator", "role"}:
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
    return found


def test_servicers_check_nothing() -> None:
    """Servicers convert and pass the principal down; every check is in a domain service."""
    found: list[Any] = []
    for path in sorted(SERVICERS.glob("*.py")):
        found += _checks_in(path)
    # admin.py converts the role enum of IssueApiKey and ApiKeyInfo: not a check.
    assert [item for item in found if not item.startswith("admin.py")] == []
    assert all(item.endswith(".role") for item in found)
