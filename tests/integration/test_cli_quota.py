"""`orbitq tenant ...` and `orbitq quota ...` through `main([...])`: tables, JSON, and refusals
printed as one line with a non-zero exit, never a traceback."""

from __future__ import annotations

import json

import pytest

from orbitq.clients.cli.main import EXIT_BROKER_ERROR, main
from tests.conftest import ServerHandle


def run(server: ServerHandle, key: str, *args: str) -> int:
    return main([*args, "--target", server.target, "--api-key", key])


def test_tenants_quota_and_history(
    server: ServerHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    op = server.operator_key
    assert run(server, op, "tenant", "create", "acme") == 0
    assert run(server, op, "tenant", "create", "globex") == 0
    assert run(server, op, "quota", "mint", "acme", "--cpu", "1,000", "--link", "60") == 0
    capsys.readouterr()
    assert run(server, op, "tenant", "key", "acme", "--json") == 0
    issued = json.loads(capsys.readouterr().out)
    assert issued["role"] == "tenant"
    assert issued["tenant"] == "acme"
    acme = issued["api_key"]
    operation = "6f1c2c3e-1b7a-4f1e-9f5e-2a4b6c8d0e1f"
    assert (
        run(server, acme, "quota", "transfer", "--to", "globex", "--cpu", "300", "--id", operation)
        == 0
    )
    assert "transferred to globex: 300 cpu (ok)" in capsys.readouterr().out
    # The same id again: idempotent, nothing moves twice.
    assert (
        run(server, acme, "quota", "transfer", "--to", "globex", "--cpu", "300", "--id", operation)
        == 0
    )
    assert "(exists)" in capsys.readouterr().out
    assert run(server, acme, "quota", "balance", "--json") == 0
    accounts = {a["kind"]: a for a in json.loads(capsys.readouterr().out)["accounts"]}
    assert accounts["cpu"]["available"] == 700
    assert accounts["link"]["available"] == 60
    assert run(server, acme, "quota", "balance") == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == [
        "OWNER",
        "KIND",
        "AVAILABLE",
        "RESERVED",
        "BALANCE",
        "UNIT",
        "ACCOUNT",
    ]
    assert "700" in table
    assert run(server, acme, "quota", "history", "acme", "--json") == 0
    history = json.loads(capsys.readouterr().out)
    changes = [
        (row["code"], row["kind"], row["direction"], row["amount"]) for row in history["transfers"]
    ]
    assert changes == [
        ("mint", "cpu", "in", 1000),
        ("mint", "link", "in", 60),
        ("transfer", "cpu", "out", 300),
    ]
    assert run(server, op, "tenant", "list", "--json") == 0
    assert [t["name"] for t in json.loads(capsys.readouterr().out)["tenants"]] == ["acme", "globex"]


def test_refusals_are_one_line_and_exit_non_zero(
    server: ServerHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    op = server.operator_key
    run(server, op, "tenant", "create", "acme")
    run(server, op, "tenant", "create", "globex")
    capsys.readouterr()
    code = run(server, op, "quota", "transfer", "--from", "acme", "--to", "globex", "--cpu", "5")
    assert code == EXIT_BROKER_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "insufficient cpu tokens" in err
    assert "[FAILED_PRECONDITION]" in err
    assert "Traceback" not in err
    assert run(server, op, "quota", "mint", "nobody", "--cpu", "5") == EXIT_BROKER_ERROR
    assert "[NOT_FOUND]" in capsys.readouterr().err
    assert run(server, "oq_wrong", "quota", "balance") == EXIT_BROKER_ERROR
    assert "[UNAUTHENTICATED]" in capsys.readouterr().err
    assert (
        run(server, op, "quota", "transfer", "--to", "globex", "--cpu", "5", "--id", "nothex") == 1
    )
    assert "--id" in capsys.readouterr().err
    assert run(server, op, "quota", "mint", "acme") == 1
    assert "at least one of --cpu" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(server, op, "quota", "mint", "acme", "--cpu", "-5")
    assert "not a whole number" in capsys.readouterr().err
