"""`orbitq init` and `orbitq serve`: create a broker's data directory, and run the broker."""

from __future__ import annotations

import argparse
import logging
import secrets
from pathlib import Path

from orbitq.clients.cli.output import print_json
from orbitq.clients.cli.registry import CommandError, CommandTree


def register(tree: CommandTree) -> None:
    init = tree.add(
        "init", "create a broker's data directory and print the operator API key", _init
    )
    _data_dir_flag(init)
    init.add_argument("--db", metavar="URL", help="database URL (default: SQLite in DATA_DIR)")
    init.add_argument(
        "--origin",
        help="ledger origin = checkpoint signing-key name (default: orbitq.local/<random>)",
    )
    init.add_argument(
        "--passphrase-file",
        type=Path,
        help="encrypt the signing key with the passphrase in this file",
    )
    init.add_argument(
        "--clock",
        default="system",
        help="'system' (default) or 'shifted:<RFC 3339 start>[x<rate>]': a clock for demos and"
        " simulations near a TLE snapshot's epoch, kept in config.toml for every `serve`",
    )
    init.add_argument("--json", action="store_true", help="print JSON for scripts")
    serve = tree.add("serve", "run the broker until SIGTERM/SIGINT", _serve)
    _data_dir_flag(serve)
    serve.add_argument("--listen", metavar="HOST:PORT", help="address (env ORBITQ_LISTEN)")
    serve.add_argument("--db", metavar="URL", help="database URL (env ORBITQ_DB_URL)")
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve over TLS")
    serve.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    serve.add_argument("--passphrase-file", type=Path, help="passphrase of the signing key")
    serve.add_argument(
        "--clock",
        help="override config.toml's clock: 'system' or 'shifted:<start>[x<rate>][@<anchor>]'",
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="json: one JSON object per line, with the RPC's request id (default text)",
    )
    serve.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (a bare PORT binds"
        " 127.0.0.1; docs/operator.md lists the metrics)",
    )


def _data_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="the broker's data directory (env ORBITQ_DATA_DIR; default ~/.orbitq)",
    )


def _passphrase(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        value = path.read_bytes().strip()
    except OSError as error:
        raise CommandError(f"cannot read the passphrase file: {error}") from None
    if not value:
        raise CommandError(f"{path} is empty")
    return value


def _init(args: argparse.Namespace) -> int:
    from orbitq.services.broker import init_data_dir
    from orbitq.services.config import default_data_dir

    data_dir = args.data_dir or default_data_dir()
    origin = args.origin or f"orbitq.local/{secrets.token_hex(4)}"
    try:
        result = init_data_dir(
            data_dir,
            origin=origin,
            db_url=args.db,
            passphrase=_passphrase(args.passphrase_file),
            clock_spec=args.clock,
        )
    except (FileExistsError, ValueError) as error:
        raise CommandError(str(error)) from None
    if args.json:
        print_json(
            {
                "data_dir": str(result.data_dir),
                "origin": origin,
                "verifier_key": result.verifier_key,
                "operator_api_key": result.operator_key.token,
            }
        )
        return 0
    print(f"initialised {result.data_dir}")
    print(f"  ledger origin     {origin}")
    print(f"  verifier key      {result.verifier_key}")
    print(f"  signing key       {result.data_dir / 'broker.key'} (mode 0600)")
    print(f"  ticket key        {result.data_dir / 'ticket.key'} (mode 0600)")
    print()
    print("operator API key (shown once; store it safely):")
    print(f"  {result.operator_key.token}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from orbitq.services.broker import Broker
    from orbitq.services.config import load_config
    from orbitq.services.identity.signing_key import SigningKeyError
    from orbitq.services.observability.logs import configure_logging
    from orbitq.services.observability.metrics import parse_listen
    from orbitq.services.server import serve

    configure_logging(args.log_level, args.log_format)
    if args.metrics:
        try:
            parse_listen(args.metrics)
        except ValueError as error:
            raise CommandError(str(error)) from None
    # Job runs every second would drown the RPC log; APScheduler speaks only of problems.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        config = load_config(
            args.data_dir,
            db_url=args.db,
            listen=args.listen,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
        )
        if args.passphrase_file is not None:
            config = replace(config, key_passphrase=_passphrase(args.passphrase_file))
        if args.clock:
            config = replace(config, clock=args.clock)
        tls = None
        if config.tls_cert is not None and config.tls_key is not None:
            tls = (config.tls_cert.read_bytes(), config.tls_key.read_bytes())
        broker = Broker(config)
    except (SigningKeyError, ValueError, OSError) as error:
        raise CommandError(str(error)) from None
    try:
        serve(broker, config.listen, tls, metrics_listen=args.metrics)
    except OSError as error:
        where = config.listen + (f" (metrics {args.metrics})" if args.metrics else "")
        raise CommandError(f"cannot serve on {where}: {error}") from None
    return 0
