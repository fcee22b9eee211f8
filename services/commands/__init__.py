"""Broker-side `orbitq` commands, registered into the CLI through the `orbitq.commands` entry point.

Owns: the list of command modules that need the server or its database (each module has
`register(tree)`). Registration is cheap: heavy imports happen inside the handlers.
"""

from __future__ import annotations

import importlib

from orbitq.clients.cli.registry import CommandTree

_COMMAND_MODULES: tuple[str, ...] = (
    "orbitq.services.commands.broker",
    "orbitq.services.commands.contacts",
    "orbitq.services.commands.ledger",
    "orbitq.services.commands.demo",
    "orbitq.services.commands.sim",
)


def register(tree: CommandTree) -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(tree)
