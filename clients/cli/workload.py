"""`orbitq workload push FILE.wasm`: store a WebAssembly module on the broker.

Owns: this command's arguments and output — the module's content address (`sha256:<hex>`,
what `orbitq request submit --workload` names) on a line of its own, the rest for people on
stderr; --json for scripts. The broker checks the module (a WASI preview 1 command: a binary,
valid, importing only wasi_snapshot_preview1, exporting _start and memory).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orbitq.clients.cli.connect import client_from
from orbitq.clients.cli.output import print_json
from orbitq.clients.cli.registry import CommandError, CommandTree

# The broker's limit (PushWorkload); bigger files are refused before they are sent.
MODULE_BYTES_MAX = 8 * 1024 * 1024


def register(tree: CommandTree) -> None:
    tree.group("workload", "WebAssembly workloads: modules requests run")
    push = tree.add(
        "workload push",
        "store a WebAssembly (WASI) module; prints its content address sha256:...",
        _push,
        connects=True,
        json_output=True,
    )
    push.add_argument("file", metavar="FILE.wasm", help="the module (a binary, not WAT text)")
    push.add_argument("--tenant", default="", help="operators: push for this tenant")


def read_limited(path: str, limit: int, what: str) -> bytes:
    """A file's bytes, or CommandError when it cannot be read or is larger than `limit`."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise CommandError(f"cannot read {what} {path}: {error.strerror or error}") from None
    if len(data) > limit:
        raise CommandError(f"{what} {path} is larger than the broker's {limit:,} bytes")
    return data


def _push(args: argparse.Namespace) -> int:
    module = read_limited(args.file, MODULE_BYTES_MAX, "module")
    with client_from(args) as client:
        pushed = client.push_workload(module, tenant=args.tenant)
    if args.json:
        print_json(
            {
                "digest": pushed.digest,
                "size": pushed.size,
                "created": pushed.created,
                "imports": list(pushed.imports),
            }
        )
        return 0
    print(pushed.digest)
    state = "stored" if pushed.created else "already stored"
    imports = ", ".join(pushed.imports) or "nothing"
    print(f"({state}: {pushed.size:,} bytes; imports {imports})", file=sys.stderr)
    return 0
