"""The SDK's client of one broker: its public face, one method per call.

Written once, for asyncio, in clients/_async_client.py; scripts/unasync.py writes the
blocking twin, clients/_sync_client.py, from it (`make sdk`; `make sdk-check` fails when the
two differ). Edit only the asyncio source: both clients then have the same methods, signatures
and docstrings.

Every call is defined once in orbitq.clients._calls, and the ledger's verification once in
orbitq.clients._verify (as flows of calls); the client only runs them on its transport.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from orbitq.clients import _calls, _flavour
from orbitq.clients._async_transport import AsyncTransport
from orbitq.clients._calls import Call, Page
from orbitq.clients._defaults import TIMEOUT_SECONDS_DEFAULT
from orbitq.clients._transport import (
    RetryConfig,
    TLSConfig,
    resolve_settings,
)
from orbitq.clients._verify import (
    PROVE_WAIT_SECONDS,
    Flow,
    LedgerVerifier,
    ProgressCallback,
    Sleep,
)
from orbitq.clients.errors import BrokerCallError
from orbitq.clients.ids import IdLike
from orbitq.clients.models import (
    Account,
    ApiKey,
    Budget,
    Cancellation,
    Checkpoint,
    Contact,
    ContactPlanReport,
    EnrollmentToken,
    Evidence,
    Explanation,
    ImportReport,
    IssuedApiKey,
    LedgerEntry,
    LogVerification,
    Node,
    Proof,
    PublicKey,
    PushedBlob,
    Quote,
    RequestSpec,
    ServiceRequest,
    Station,
    Submitted,
    Tenant,
    TransferOutcome,
    TransferRecord,
    TransferSpec,
    Transition,
    UpsertedStation,
    UsageRow,
    VerifiedReceipt,
)

T = TypeVar("T")


class AsyncBrokerClient:
    """A client of one broker, safe for concurrent use (by threads, or by the tasks of one
    event loop); close it, or use it in `async with`.

    `target` is HOST:PORT (default ORBITQ_TARGET, else 127.0.0.1:7707) and `api_key` the key
    (default ORBITQ_API_KEY); `timeout` bounds every call, `tls` and `retry` are optional.
    `ledger_key` pins the broker's checkpoint key (its C2SP verifier key string, published by
    the operator); without it the broker's own key is pinned on first use (TOFU, weaker).
    `trust_dir` keeps the last verified checkpoint per broker (default ORBITQ_TRUST_DIR, else
    ~/.orbitq/trust).
    """

    def __init__(
        self,
        target: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = TIMEOUT_SECONDS_DEFAULT,
        tls: TLSConfig | None = None,
        retry: RetryConfig | None = None,
        ledger_key: str | None = None,
        trust_dir: str | Path | None = None,
    ) -> None:
        self._ledger = LedgerVerifier(ledger_key, trust_dir)
        self._ledger_lock = _flavour.AsyncLock()
        self._transport = AsyncTransport(resolve_settings(target, api_key, timeout, tls, retry))

    async def __aenter__(self) -> AsyncBrokerClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls still running are cancelled."""
        await self._transport.close()

    async def _run(self, call: Call[T]) -> T:
        response = await self._transport.unary(
            call.service, call.method, call.request, idempotent=call.idempotent
        )
        return call.parse(response)

    async def _drive(self, flow: Flow[T]) -> T:
        """Run a verification flow: its calls in order, failures thrown back into it."""
        async with self._ledger_lock:  # one flow at a time updates the trust state
            outcome: Any = None
            failure: BrokerCallError | None = None
            while True:
                try:
                    step = flow.send(outcome) if failure is None else flow.throw(failure)
                except StopIteration as done:
                    result: T = done.value
                    return result
                outcome, failure = None, None
                if isinstance(step, Sleep):
                    await _flavour.async_sleep(step.seconds)
                    continue
                try:
                    outcome = await self._run(step)
                except BrokerCallError as error:
                    failure = error

    # -- the signed ledger ---------------------------------------------------------------------

    async def checkpoint(self, *, fresh: bool = False) -> Checkpoint:
        """The broker's latest checkpoint, verified: signed by the pinned key and consistent
        with the last checkpoint this client verified (then it becomes the last verified).
        `fresh` (operators) asks the broker to sign one over everything committed first.

        Raises a BrokerIntegrityError subclass if the broker rewrote history or the key."""
        return await self._drive(self._ledger.checkpoint(fresh))

    async def prove_entry(self, index: int, *, wait_seconds: float = PROVE_WAIT_SECONDS) -> Proof:
        """Entry `index`, proved to be in the broker's latest checkpoint (verified first)."""
        return await self._drive(self._ledger.prove(index, None, wait_seconds))

    async def prove_transfer(
        self, transfer_id: IdLike, *, wait_seconds: float = PROVE_WAIT_SECONDS
    ) -> Proof:
        """The entry of transfer `transfer_id`, proved to be in the latest checkpoint (verified
        first). Waits up to `wait_seconds` for a checkpoint that covers a fresh transfer."""
        return await self._drive(self._ledger.prove(None, transfer_id, wait_seconds))

    async def entries(self, start: int = 0, end: int = 0) -> list[LedgerEntry]:
        """Entries [start, end) of the log, decoded (end 0: the latest checkpoint's size)."""
        return await self._drive(self._ledger.entries(start, end))

    async def verify_log(self, progress: ProgressCallback | None = None) -> LogVerification:
        """Verify the latest checkpoint and every entry under it (the root is recomputed).
        `progress` is called with (entries verified, entries in all) as it goes."""
        return await self._drive(self._ledger.verify_log(progress))

    async def public_key(self) -> PublicKey:
        """The key the broker presents for its checkpoints (trust it only out of band)."""
        return await self._run(_calls.get_public_key())

    async def verify_receipt(
        self, request_id: str, *, wait_seconds: float = PROVE_WAIT_SECONDS
    ) -> VerifiedReceipt:
        """Request `request_id`'s usage receipt, verified: signed by its node's enrolled key,
        that key's entry and the receipt's entry proved in a verified checkpoint, and every
        settling transfer proved to carry the receipt's SHA-256 and to post no more than the
        receipt backs (docs/ledger-format.md C6).

        Raises a BrokerIntegrityError subclass if any of it fails; FailedPreconditionError if
        the request has no receipt yet."""
        return await self._drive(self._ledger.verify_receipt(request_id, wait_seconds))

    # -- tenants and keys ----------------------------------------------------------------------

    async def create_tenant(self, name: str, display_name: str = "") -> Tenant:
        """Operator: create a tenant (and its cpu, storage and link accounts)."""
        return await self._run(_calls.create_tenant(name, display_name))

    async def list_tenants(self, page_size: int = 0, page_token: str = "") -> Page[Tenant]:
        """One page of the tenants by name: all (operators) or your own (page_size 0: default)."""
        return await self._run(_calls.list_tenants(page_size, page_token))

    async def issue_api_key(
        self, role: str = "tenant", tenant: str = "", node: str = "", label: str = ""
    ) -> IssuedApiKey:
        """A new key; its secret is in `.api_key` and is never shown again."""
        return await self._run(_calls.issue_api_key(role, tenant, node, label))

    async def revoke_api_key(self, key_id: str) -> ApiKey:
        """Revoke a key by id (operators: any; tenants: their own tenant's); calls made with it
        fail from then on. Revoking a revoked key returns it unchanged."""
        return await self._run(_calls.revoke_api_key(key_id))

    # -- quota ---------------------------------------------------------------------------------

    async def mint(
        self,
        tenant: str,
        *,
        cpu: int = 0,
        storage: int = 0,
        link: int = 0,
        id: IdLike | None = None,
    ) -> list[TransferOutcome]:
        """Operator: new tokens for `tenant`. Retries reuse `id` (made here when not given)."""
        return await self._run(_calls.mint(tenant, cpu, storage, link, id))

    async def balances(
        self, tenant: str = "", *, system: bool = False, at_timestamp_ns: int = 0
    ) -> list[Account]:
        """A tenant's accounts (your own by default), or the system accounts (operator)."""
        return await self._run(_calls.balances(tenant, system, at_timestamp_ns))

    async def transfer(
        self,
        to_tenant: str,
        *,
        cpu: int = 0,
        storage: int = 0,
        link: int = 0,
        from_tenant: str = "",
        id: IdLike | None = None,
    ) -> list[TransferOutcome]:
        """Move tokens to another tenant; all kinds succeed or fail together.

        An overdraft raises FailedPreconditionError naming the kind and the shortfall.
        """
        return await self._run(_calls.transfer(to_tenant, cpu, storage, link, from_tenant, id))

    async def list_transfers(
        self,
        tenant: str = "",
        *,
        account_id: int = 0,
        kind: str = "",
        code: str = "",
        since_ns: int = 0,
        until_ns: int = 0,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[TransferRecord]:
        """Transfers that moved balances, newest first."""
        return await self._run(
            _calls.list_transfers(
                tenant, account_id, kind, code, since_ns, until_ns, page_size, page_token
            )
        )

    async def create_transfers(self, transfers: Sequence[TransferSpec]) -> list[TransferOutcome]:
        """Operator batch with the full two-phase semantics; one outcome per transfer."""
        return await self._run(_calls.create_transfers(transfers))

    async def grant_budget(
        self,
        tenant: str,
        *,
        cpu: int = 0,
        storage: int = 0,
        link: int = 0,
        period: str = "month",
        rollover_percent: int = 0,
        replace: bool = False,
    ) -> list[Budget]:
        """Operator: a budget per kind given, granted at the start of every `period` (day,
        week, month; UTC) and lapsing at its end, but up to `rollover_percent` % of the grant
        carries over if unspent. The same terms again return the existing budgets; other terms
        need `replace` and apply from the next period."""
        return await self._run(
            _calls.grant_budget(tenant, cpu, storage, link, period, rollover_percent, replace)
        )

    async def budgets(self, tenant: str = "") -> list[Budget]:
        """Budgets with their current period (your own; operators: any tenant's, or all)."""
        return await self._run(_calls.list_budgets(tenant))

    async def usage_report(
        self, *, since_ns: int, until_ns: int, by: str = "day", tenant: str = ""
    ) -> list[UsageRow]:
        """Reserved, settled, released, refunded, granted and lapsed tokens per tenant, group
        (`by`: day, week, month, node or kind) and kind over [since_ns, until_ns)."""
        return await self._run(_calls.usage_report(tenant, since_ns, until_ns, by))

    # -- the constellation ---------------------------------------------------------------------

    async def import_nodes(
        self,
        text: str,
        *,
        fmt: str = "auto",
        cpu_millicores: int = 0,
        storage_mb: int = 0,
        downlink_mbps: int = 0,
        uplink_mbps: int = 0,
        labels: Mapping[str, str] | None = None,
        skip_bad: bool = False,
        capacities_csv: str = "",
    ) -> ImportReport:
        """Operator: upsert nodes by NORAD id from TLE (2- or 3-line) or OMM (CSV, JSON) text.

        `fmt`: auto, tle, omm-csv or omm-json. A capacity of 0 is "not given": new nodes get
        the broker's default and existing ones keep theirs; `capacities_csv`
        (norad_id,cpu_millicores,storage_mb,downlink_mbps,uplink_mbps) sets them per node.
        `labels` are set on every imported node. Any bad record raises InvalidArgumentError
        listing each (nothing imported) unless `skip_bad`: then the report lists them."""
        return await self._run(
            _calls.import_nodes(
                text,
                fmt,
                (cpu_millicores, storage_mb, downlink_mbps, uplink_mbps),
                labels or {},
                skip_bad,
                capacities_csv,
            )
        )

    async def list_nodes(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        state: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[Node]:
        """Nodes carrying every one of `labels` (and in `state`), by NORAD id."""
        return await self._run(_calls.list_nodes(labels or {}, state, page_size, page_token))

    async def set_node_state(self, node_id: str, state: str) -> Node:
        """Operator: ready, degraded (keeps its work, takes no new) or down."""
        return await self._run(_calls.set_node_state(node_id, state))

    async def upsert_station(
        self,
        station_id: str,
        *,
        name: str,
        latitude_deg: float,
        longitude_deg: float,
        altitude_m: float = 0.0,
        min_elevation_deg: float = 10.0,
        antennas: int = 1,
        labels: Mapping[str, str] | None = None,
        downlink_mbps: float = 0.0,
        uplink_mbps: float = 0.0,
    ) -> UpsertedStation:
        """Operator: create or replace a ground station (link rates 0: the broker's default)."""
        return await self._run(
            _calls.upsert_station(
                station_id,
                name,
                latitude_deg,
                longitude_deg,
                altitude_m,
                min_elevation_deg,
                antennas,
                labels or {},
                downlink_mbps,
                uplink_mbps,
            )
        )

    async def import_stations(self, text: str) -> ImportReport:
        """Operator: upsert every station of a CSV or JSON list (parsed by the broker), or none
        if any record is bad (InvalidArgumentError names each)."""
        return await self._run(_calls.import_stations(text))

    async def list_stations(self, *, page_size: int = 0, page_token: str = "") -> Page[Station]:
        """One page of the ground stations, by id (page_size 0: the broker's default)."""
        return await self._run(_calls.list_stations(page_size, page_token))

    async def list_contacts(
        self,
        node: str = "",
        station: str = "",
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[Contact]:
        """Stored contact windows overlapping [start, end) (aware datetimes), by AOS."""
        return await self._run(
            _calls.list_contacts(node, station, start, end, page_size, page_token)
        )

    async def import_contact_plan(
        self,
        text: str,
        *,
        fmt: str = "auto",
        default_mode: str = "replace",
        dry_run: bool = False,
    ) -> ContactPlanReport:
        """Operator: contact windows booked from a ground network, as JSON or CSV text (`fmt`:
        auto, json or csv; formats in docs/operator.md). For each station named, its booked
        windows not yet over are replaced and its mode set: `replace` (the booked windows are
        its contacts) or `restrict` (only booked time inside computed windows); stations the
        text gives no mode get `default_mode`. All or nothing: InvalidArgumentError or
        NotFoundError naming each bad window. The report warns of windows where the
        satellite is not visible; `dry_run` checks and reports without storing."""
        return await self._run(_calls.import_contact_plan(text, fmt, default_mode, dry_run))

    # -- service requests ----------------------------------------------------------------------

    async def quote(self, spec: RequestSpec, *, eta: bool = False, tenant: str = "") -> Quote:
        """What `spec` would cost: `cost` is what submit reserves, `minimum` the least. With
        `eta`, also where it would fit in the current world, or why not and the smallest change
        that fits (`Quote.eta`; `short` counts the tokens missing from your balance, or from
        `tenant`'s for an operator), and its cancellation terms (`Quote.terms`)."""
        return await self._run(_calls.quote(spec, eta, tenant))

    async def explain_request(self, request_id: str) -> Explanation:
        """Why a request is where it is: a placed one's planned uplink, run and downlink; a
        pending or unschedulable one's reasons per scheduler plugin, the earliest placement the
        current world allows, or the smallest change that fits; and its cancellation terms.
        NotFoundError for an unknown id, PermissionDeniedError for another tenant's."""
        return await self._run(_calls.explain_request(request_id))

    async def submit(
        self, spec: RequestSpec, *, idempotency_key: str | None = None, tenant: str = ""
    ) -> Submitted:
        """Reserve the tokens and queue the request. The same `idempotency_key` returns the
        same request (`created` False); without one the SDK makes one and reuses it across
        retries. Operators name the `tenant`. Too few tokens: FailedPreconditionError naming
        the kind and the shortfall (nothing reserved)."""
        return await self._run(_calls.submit(spec, idempotency_key, tenant))

    async def get_request(self, request_id: str) -> ServiceRequest:
        """A request by id: your own, or any for an operator (NotFoundError otherwise)."""
        return await self._run(_calls.get_request(request_id))

    async def list_requests(
        self,
        *,
        states: Sequence[str] = (),
        tenant: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[ServiceRequest]:
        """Newest first: your own; an operator's all, or `tenant`'s. `states` filters."""
        return await self._run(_calls.list_requests(states, tenant, page_size, page_token))

    async def cancel_request(self, request_id: str) -> ServiceRequest:
        """Cancel before it runs (the reservation is released); later: FailedPrecondition."""
        return await self._run(_calls.cancel_request(request_id))

    async def cancel(self, request_id: str) -> Cancellation:
        """`cancel_request`, answered with what cancelling charged (a placed request past its
        cut-off pays its fee, `terms.fee`) and the terms it was cancelled under."""
        return await self._run(_calls.cancel(request_id))

    async def push_workload(self, module: bytes, *, tenant: str = "") -> PushedBlob:
        """Store a WebAssembly (WASI preview 1) module once; requests name it by the digest.
        Not a valid module, or importing beyond WASI: InvalidArgumentError saying why."""
        return await self._run(_calls.push_workload(module, tenant))

    async def push_input(self, data: bytes, *, tenant: str = "") -> PushedBlob:
        """Store a request's input once; a request names it by the digest (`spec.input`)."""
        return await self._run(_calls.push_input(data, tenant))

    async def get_blob(self, digest: str) -> bytes:
        """A whole blob you may read (your modules, inputs and results), fetched in chunks
        and checked against its digest (BrokerIntegrityError if it does not match)."""
        data = bytearray()
        for _ in range(_calls.BLOB_CHUNKS_MAX):
            chunk = await self._run(_calls.get_blob(digest, len(data)))
            data += chunk.data
            if len(data) >= chunk.total_bytes or not chunk.data:
                break
        return _calls.checked_blob(digest, bytes(data))

    async def get_evidence(self, request_id: str) -> Evidence:
        """What backs a request's charge: its ticket, receipt, log entries, settlements."""
        return await self._run(_calls.get_evidence(request_id))

    async def fetch_result(self, request_id: str) -> bytes:
        """A request's result, checked against the result digest of its usage receipt (the
        receipt's signature checked under the node key it names; BrokerIntegrityError on
        any mismatch)."""
        evidence = await self.get_evidence(request_id)
        digest = _calls.result_digest_of(evidence)
        return await self.get_blob(digest)

    async def create_enrollment_token(
        self, node: str, *, ground_link: str = "contacts", ttl_seconds: int = 0
    ) -> EnrollmentToken:
        """Operators: a one-time token for node `node`'s agent (`ground_link` "always" for a
        ground stand-in that may call at any time); a newer token replaces it."""
        return await self._run(_calls.create_enrollment_token(node, ground_link, ttl_seconds))

    async def watch_request(
        self, request_id: str, after_sequence: int = 0
    ) -> AsyncIterator[Transition]:
        """Each transition after `after_sequence`, as it happens, until a terminal one (none
        when the request had ended by then). When the broker ends a stream early (its time
        limit, a restart) the watch resumes after the last transition seen, so none is lost
        or repeated."""
        cursor = _calls.WatchCursor(request_id, after_sequence)
        while not cursor.done:
            started = time.monotonic()
            error: BrokerCallError | None = None
            try:
                async for message in self._transport.stream(
                    "request", "WatchRequest", cursor.request(), None
                ):
                    transition = cursor.received(message)
                    yield transition
                    if transition.terminal:
                        return
            except BrokerCallError as failure:
                error = failure
            pause = cursor.ended(time.monotonic() - started, error)
            if pause:
                await _flavour.async_sleep(pause)
