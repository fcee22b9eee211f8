"""Shared pieces of the client commands: a BrokerClient from the connection flags, and
argument types with messages a person can act on."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from orbitq.clients import BrokerClient, TLSConfig
from orbitq.clients.cli.registry import CommandError
from orbitq.clients.errors import ConfigurationError


def client_from(args: argparse.Namespace) -> BrokerClient:
    """A client from the connection flags (and, for ledger commands, --vkey and --trust-dir)."""
    try:
        tls = TLSConfig.from_ca_file(args.tls_ca) if args.tls_ca else None
        return BrokerClient(
            args.target,
            args.api_key,
            timeout=args.timeout,
            tls=tls,
            ledger_key=getattr(args, "vkey", None),
            trust_dir=getattr(args, "trust_dir", None),
        )
    except (ConfigurationError, OSError) as error:
        raise CommandError(str(error)) from None


def whole_number(text: str, *, minimum: int = 0, what: str = "a whole number") -> int:
    """A whole number >= `minimum` (underscores and commas allowed: 1_000, 1,000)."""
    cleaned = text.replace("_", "").replace(",", "")
    if not cleaned.isdigit() or int(cleaned) < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what} >= {minimum}")
    return int(cleaned)


def amount(text: str) -> int:
    """A token amount: a whole number >= 0."""
    return whole_number(text, what="a whole number of tokens")


def positive(text: str) -> int:
    return whole_number(text, minimum=1)


def label(text: str) -> tuple[str, str]:
    """KEY=VALUE, both stripped; the key must not be empty."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key.strip(), value.strip()


def instant(text: str) -> datetime:
    """An RFC 3339 instant, e.g. 2025-12-06T00:00:00Z."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time such as 2025-12-06T00:00:00Z"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def ns_of(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000


def rfc3339(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_rounded(value: datetime) -> str:
    """RFC 3339 UTC rounded to the nearest second (contact windows are refined to one)."""
    return rfc3339((value + timedelta(microseconds=500_000)).replace(microsecond=0))


def rfc3339_ns(ns: int) -> str:
    return rfc3339(datetime.fromtimestamp(ns / 1e9, tz=UTC)) if ns else "-"
