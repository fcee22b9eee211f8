"""`orbitq tenant create|list|key`: tenants and their API keys."""

from __future__ import annotations

import argparse
import dataclasses

from orbitq.clients.cli.connect import client_from, rfc3339
from orbitq.clients.cli.output import print_json, print_table
from orbitq.clients.cli.registry import CommandTree


def register(tree: CommandTree) -> None:
    tree.group("tenant", "tenants and their API keys")
    create = tree.add("tenant create", "create a tenant (operator)", _create, connects=True)
    create.add_argument("name", help="1-63 characters of a-z, 0-9 and '-', starting with a letter")
    create.add_argument("--display-name", default="", help="a name for people")
    tree.add("tenant list", "list tenants", _list, connects=True, json_output=True)
    key = tree.add(
        "tenant key",
        "issue an API key for a tenant (or, with --revoke, revoke one)",
        _key,
        connects=True,
        json_output=True,
    )
    key.add_argument("tenant", nargs="?", default="", help="the tenant the key acts for")
    key.add_argument("--role", choices=["tenant", "operator", "node"], default="tenant")
    key.add_argument("--node", default="", help="for --role node: the node id")
    key.add_argument("--label", default="", help="free text to recognise the key")
    key.add_argument("--revoke", metavar="KEY_ID", help="revoke this key instead of issuing one")


def _create(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        tenant = client.create_tenant(args.name, args.display_name)
    print(f"created tenant {tenant.name}")
    return 0


def _list(args: argparse.Namespace) -> int:
    tenants = []
    with client_from(args) as client:
        token = ""
        while True:
            page = client.list_tenants(page_size=1000, page_token=token)
            tenants.extend(page.items)
            token = page.next_page_token
            if not token:
                break
    if args.json:
        print_json(
            {
                "tenants": [
                    {
                        "name": t.name,
                        "display_name": t.display_name,
                        "created_at": rfc3339(t.created_at),
                    }
                    for t in tenants
                ]
            }
        )
    else:
        rows = [
            {"name": t.name, "display_name": t.display_name, "created": rfc3339(t.created_at)}
            for t in tenants
        ]
        print_table(rows, ["name", "display_name", "created"])
    return 0


def _key(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        if args.revoke:
            key = client.revoke_api_key(args.revoke)
            if args.json:
                print_json(_key_json(key))
            else:
                print(f"revoked API key {key.key_id} ({key.role} {key.tenant or key.node})")
            return 0
        issued = client.issue_api_key(args.role, args.tenant, args.node, args.label)
    if args.json:
        print_json({**_key_json(issued.key), "api_key": issued.api_key})
    else:
        owner = issued.key.tenant or issued.key.node or "the operator"
        print(f"API key {issued.key.key_id} ({issued.key.role} key for {owner}), shown once:")
        print(f"  {issued.api_key}")
    return 0


def _key_json(key: object) -> dict[str, object]:
    data = dataclasses.asdict(key)  # type: ignore[call-overload]
    return {
        name: rfc3339(value) if name.endswith("_at") and value is not None else value
        for name, value in data.items()
    }
