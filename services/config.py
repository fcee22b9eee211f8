"""The broker's configuration: a data directory, a database URL, an address, a ledger origin.

Owns: defaults, the data directory layout (orbitq.db, broker.key, ticket.key, config.toml,
blobs/), reading config.toml, and the ORBITQ_* environment variables. Explicit flags beat the
environment, which beats config.toml, which beats defaults.

`settlement` says what starts and completes placed work: "receipts" (the default: a node's
agent pulls the signed ticket, runs the work and reports a signed usage receipt, which is what
is charged) or "plan" (the clock starts and completes work exactly as placed and charges the
plan: for planning runs and tests that need no agent; not for production, since nothing runs).

Does not own: what the broker does with any of it.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

LISTEN_DEFAULT = "127.0.0.1:7707"
CONFIG_FILE = "config.toml"
KEY_FILE = "broker.key"
# The Ed25519 key tickets are signed with: another key than the checkpoints' (a leak of one
# does not forge the other).
TICKET_KEY_FILE = "ticket.key"
BLOBS_DIR = "blobs"
SETTLEMENTS = ("receipts", "plan")
# The longest ticket pull lead an operator may set (an hour; a LEO contact is minutes).
TICKET_PULL_LEAD_SECONDS_MAX = 3_600
# The notice of new work, when given: above the broker's margin for a cycle's own duration
# (services/agents/service.py), at most an hour.
TICKET_PULL_NOTICE_SECONDS_MIN = 60
TICKET_PULL_NOTICE_SECONDS_MAX = 3_600
DB_FILE = "orbitq.db"
# C2SP origins are schema-less URL-like names: no spaces, no control characters.
ORIGIN_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~/:+-]{0,199}$")


def default_data_dir() -> Path:
    return Path(os.environ.get("ORBITQ_DATA_DIR", Path.home() / ".orbitq"))


@dataclass(frozen=True)
class BrokerConfig:
    data_dir: Path
    # Database URL: sqlite:///FILE (default: DATA_DIR/orbitq.db) or postgresql://...
    db_url: str
    # The checkpoint origin and signing-key name (C2SP tlog-checkpoint).
    origin: str
    listen: str = LISTEN_DEFAULT
    tls_cert: Path | None = None
    tls_key: Path | None = None
    key_passphrase: bytes | None = None
    # How often pending reservations past their timeout are released (seconds).
    expire_interval_seconds: float = 1.0
    # How often a checkpoint is signed when the log has grown (seconds).
    checkpoint_interval_seconds: float = 2.0
    # "system", or "shifted:<RFC 3339 start>[x<rate>]" for demos near a TLE snapshot's epoch.
    clock: str = "system"
    # The contact plan: how far ahead contacts are computed (hours, at most 168), how often the
    # plan is recomputed (seconds; also right after nodes or stations change), and how long
    # contacts that are over stay on the record (days).
    contact_horizon_hours: float = 24.0
    contact_refresh_seconds: float = 600.0
    contact_retention_days: float = 7.0
    # How often a scheduling cycle runs (seconds); also soon after submissions.
    schedule_interval_seconds: float = 5.0
    # "receipts" (node agents, the default) or "plan" (the clock; no agent: not for production).
    settlement: str = "receipts"
    # A node's agent may call inside [aos - tolerance, los + tolerance] of its contacts.
    contact_tolerance_seconds: int = 5
    # A ticket may be pulled this long before its uplink instant, inside its uplink contact
    # (at most TICKET_PULL_LEAD_SECONDS_MAX; 0: from the uplink instant on). Off by default:
    # preemption and moves respect it (the scheduler's guard), but re-placement after a world
    # change or a node going down may still leave an early-pulled ticket stale aboard
    # (docs/agent.md, "Tickets").
    ticket_pull_lead_seconds: int = 0
    # Notice of new work (at most TICKET_PULL_NOTICE_SECONDS_MAX; 0: none): the scheduler
    # places nothing to begin sooner than this after its cycle, so PullTickets can tell an
    # agent that nothing new is due for it until then and the agent pulls less often
    # (docs/agent.md, "Pulling less"). Costs every placement up to this much delay.
    ticket_pull_notice_seconds: int = 0
    # A usage receipt may come this long after the request's deadline; without one by then the
    # run is the operator's fault and the reservation is refunded. Below the ledger's grace
    # (GRACE_SECONDS), so the refund comes before the reservation's own timeout.
    receipt_grace_seconds: int = 1_800
    # Contacts a node may miss (no heartbeat) before the broker degrades it, then takes it down;
    # how often the health job counts.
    missed_contacts_degraded: int = 2
    missed_contacts_down: int = 4
    node_health_interval_seconds: float = 60.0
    # The blob store (modules, inputs, results): total bytes, bytes of one tenant's modules and
    # inputs, and how long results are kept after their request ends.
    blob_store_bytes_max: int = 64 * 1024**3
    blob_tenant_bytes_max: int = 4 * 1024**3
    result_retention_days: float = 7.0
    # Long-lived streams (health Watch, reflection, WatchRequest): open at once in total (at
    # most half the server's worker threads) and per peer address, and their lifetime
    # (orbitq.services.boundary.admission).
    streams_max: int = 32
    streams_per_peer_max: int = 16
    stream_seconds_max: float = 1800.0
    # Cancellation terms (orbitq.services.requests.terms): cancelling a placed request is free
    # until this long before its uplink instant (AWS Ground Station's 15 minutes); after that
    # it costs this share (0..100) of the link tokens of its placement.
    cancel_cutoff_seconds: int = 900
    cancel_fee_percent: int = 100
    # False only for a throw-away database (the simulator's scratch file): commits return
    # before they reach the disk (orbitq.services.db.engine.create_engine). Deliberately not
    # read from config.toml: a broker that acknowledges transfers must make them durable.
    durable: bool = True

    @property
    def key_path(self) -> Path:
        return self.data_dir / KEY_FILE

    @property
    def ticket_key_path(self) -> Path:
        return self.data_dir / TICKET_KEY_FILE

    @property
    def blobs_path(self) -> Path:
        return self.data_dir / BLOBS_DIR

    @property
    def receipts(self) -> bool:
        """Whether node agents' receipts start and complete work (else the clock does)."""
        return self.settlement == "receipts"


def validate_origin(origin: str) -> str:
    if not ORIGIN_PATTERN.match(origin):
        raise ValueError(
            f"ledger origin {origin!r} is not valid: 1-200 characters of letters, digits and"
            " ._~/:+- (e.g. orbitq.example.com/ledger)"
        )
    return origin


def load_config(
    data_dir: Path | None = None,
    *,
    db_url: str | None = None,
    listen: str | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> BrokerConfig:
    """The effective configuration of the broker whose data directory is `data_dir`."""
    directory = (data_dir or default_data_dir()).expanduser().resolve()
    stored: dict[str, object] = {}
    path = directory / CONFIG_FILE
    if path.exists():
        with path.open("rb") as handle:
            stored = tomllib.load(handle)
    origin = str(stored.get("origin", "orbitq.local/ledger"))
    config = BrokerConfig(
        data_dir=directory,
        db_url=str(stored.get("db_url", f"sqlite:///{directory / DB_FILE}")),
        origin=validate_origin(origin),
        listen=str(stored.get("listen", LISTEN_DEFAULT)),
        clock=str(stored.get("clock", "system")),
        contact_horizon_hours=_number(stored, "contact_horizon_hours", 24.0),
        contact_refresh_seconds=_number(stored, "contact_refresh_seconds", 600.0),
        contact_retention_days=_number(stored, "contact_retention_days", 7.0),
        schedule_interval_seconds=_number(stored, "schedule_interval_seconds", 5.0),
        settlement=_settlement(stored.get("settlement", "receipts")),
        contact_tolerance_seconds=_whole(stored, "contact_tolerance_seconds", 5, low=0),
        ticket_pull_lead_seconds=_whole(stored, "ticket_pull_lead_seconds", 0, low=0),
        ticket_pull_notice_seconds=_whole(stored, "ticket_pull_notice_seconds", 0, low=0),
        receipt_grace_seconds=_whole(stored, "receipt_grace_seconds", 1_800),
        missed_contacts_degraded=_whole(stored, "missed_contacts_degraded", 2),
        missed_contacts_down=_whole(stored, "missed_contacts_down", 4),
        node_health_interval_seconds=_number(stored, "node_health_interval_seconds", 60.0),
        blob_store_bytes_max=_whole(stored, "blob_store_bytes_max", 64 * 1024**3),
        blob_tenant_bytes_max=_whole(stored, "blob_tenant_bytes_max", 4 * 1024**3),
        result_retention_days=_number(stored, "result_retention_days", 7.0),
        streams_max=_whole(stored, "streams_max", 32),
        streams_per_peer_max=_whole(stored, "streams_per_peer_max", 16),
        stream_seconds_max=_number(stored, "stream_seconds_max", 1800.0),
        cancel_cutoff_seconds=_whole(stored, "cancel_cutoff_seconds", 900, low=0),
        cancel_fee_percent=_whole(stored, "cancel_fee_percent", 100, low=0),
    )
    if config.cancel_fee_percent > 100:
        raise ValueError(
            f"{CONFIG_FILE}: cancel_fee_percent must be in 0..100, got {config.cancel_fee_percent}"
        )
    if config.ticket_pull_lead_seconds > TICKET_PULL_LEAD_SECONDS_MAX:
        raise ValueError(
            f"{CONFIG_FILE}: ticket_pull_lead_seconds must be at most"
            f" {TICKET_PULL_LEAD_SECONDS_MAX}, got {config.ticket_pull_lead_seconds}"
        )
    notice = config.ticket_pull_notice_seconds
    if notice and not TICKET_PULL_NOTICE_SECONDS_MIN <= notice <= TICKET_PULL_NOTICE_SECONDS_MAX:
        raise ValueError(
            f"{CONFIG_FILE}: ticket_pull_notice_seconds must be 0 or"
            f" {TICKET_PULL_NOTICE_SECONDS_MIN}..{TICKET_PULL_NOTICE_SECONDS_MAX}, got {notice}"
        )
    if config.missed_contacts_down < config.missed_contacts_degraded:
        raise ValueError(
            f"{CONFIG_FILE}: missed_contacts_down ({config.missed_contacts_down}) must not be"
            f" below missed_contacts_degraded ({config.missed_contacts_degraded})"
        )
    env = os.environ
    passphrase = env.get("ORBITQ_KEY_PASSPHRASE")
    config = replace(
        config,
        db_url=db_url or env.get("ORBITQ_DB_URL") or config.db_url,
        listen=listen or env.get("ORBITQ_LISTEN") or config.listen,
        tls_cert=tls_cert,
        tls_key=tls_key,
        key_passphrase=passphrase.encode() if passphrase else None,
    )
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ValueError("give both --tls-cert and --tls-key, or neither")
    return config


def _number(stored: dict[str, object], key: str, default: float) -> float:
    value = stored.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{CONFIG_FILE}: {key} must be a positive number, got {value!r}")
    return float(value)


def _whole(stored: dict[str, object], key: str, default: int, *, low: int = 1) -> int:
    value = stored.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{CONFIG_FILE}: {key} must be a whole number >= {low}, got {value!r}")
    return value


def _settlement(value: object) -> str:
    if value not in SETTLEMENTS:
        raise ValueError(
            f"{CONFIG_FILE}: settlement must be one of {', '.join(map(repr, SETTLEMENTS))},"
            f" got {value!r}"
        )
    return str(value)


def write_config(directory: Path, origin: str, db_url: str | None, clock: str = "system") -> Path:
    """config.toml as `orbitq init` leaves it."""
    lines = [
        "# orbitq broker configuration (written by `orbitq init`).",
        f'origin = "{validate_origin(origin)}"',
    ]
    if db_url:
        if '"' in db_url or "\n" in db_url:
            raise ValueError("the database URL may not contain quotes or newlines")
        lines.append(f'db_url = "{db_url}"')
    if clock != "system":
        if '"' in clock or "\n" in clock:
            raise ValueError("the clock may not contain quotes or newlines")
        lines.append(f'clock = "{clock}"')
    path = directory / CONFIG_FILE
    path.write_text("\n".join(lines) + "\n")
    return path
