"""The `orbitq` command line: one entry point, subcommands, tables for people, `--json` for scripts.

Client commands (talking to a broker through the SDK) live here. Commands that run the broker
or read its database (`init`, `serve`, `sim`, offline `ledger verify`, `contacts compute`) are
registered by orbitq.services through the `orbitq.commands` entry-point group, so this package
never imports the server.
"""
