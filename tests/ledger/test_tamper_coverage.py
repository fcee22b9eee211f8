"""Tamper coverage (issue 12.4): every column of every ledger table changed, rows deleted, two
rows swapped, the log truncated — `orbitq ledger verify` exits 4 naming the entry or row, on
SQLite and PostgreSQL.

The cases come from the schema: the `ledger_*` tables of SQLModel.metadata, which a test checks
against the migrated database, so a new table or column is covered without editing this file.
A column's value is changed the way its type allows (an integer to a nearby value no row of
that column has, one bit of a byte string, one character of a text), set to NULL, or filled
where it was NULL; in the middle row and in the last row. One populated ledger per database is
built once as a template (accounts of two tenants, transfers of every kind — single-phase,
pending, posted, voided, expired, a recorded failure —, a node key and a receipt with its
settlement, three chained checkpoints, an entry after the newest); each case tampers with its
own copy (a file copy on SQLite, a schema clone on PostgreSQL) and runs the real CLI on it with
an empty trust state: what is caught here is caught by a fresh audit alone.

Every ledger column is checked by the audit; none is exempt (EXEMPT is empty, and a test keeps
it honest). What a fresh audit cannot see is a consistent rollback: an older copy of the whole
database, or the newest checkpoints and entries dropped with every derived row made to agree.
A kept trust state (`orbitq ledger verify --trust-dir`) or a witness catches that
(tests/ledger/test_tamper.py, docs/ledger-format.md "What an audit cannot see").
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

import orbitq.ledger.store.tables
from orbitq.clients.cli.main import main
from orbitq.clients.cli.registry import EXIT_INTEGRITY
from orbitq.ledger.entries import decode_entry
from orbitq.ledger.model import Code, Kind, Transfer, TransferFlag
from orbitq.ledger.store import AccountSpec
from tests.conftest import PG_URL, require_postgres
from tests.ledger.evidence_history import build

assert orbitq.ledger.store.tables

LEDGER_TABLES = sorted(
    (table for name, table in SQLModel.metadata.tables.items() if name.startswith("ledger_")),
    key=lambda table: table.name,
)
# Columns the audit does not check, with the reason. Empty: every column is checked (V1-V20).
EXEMPT: dict[tuple[str, str], str] = {}
SECOND = 1_000_000_000


# -- the template ledger ------------------------------------------------------------------------


def populate(url: str) -> str:
    """Build the template ledger at `url`; returns the broker's verifier key."""
    ledger, engine = build(url)  # acme, mints, a node key, a receipt-backed settlement, cp #1
    try:
        store, accounts = ledger.store, ledger.accounts
        globex = {
            account.kind: account.id
            for account in store.create_accounts(
                [AccountSpec(kind, tenant="globex") for kind in Kind], ledger.now()
            )
        }
        acme, escrow = accounts[("acme", Kind.CPU)], accounts[("escrow", Kind.CPU)]

        def transfer(id: int, debit: int, credit: int, amount: int, **extra: Any) -> Transfer:
            return Transfer(id, debit, credit, amount, kind=int(Kind.CPU), **extra)

        pending = {"code": int(Code.RESERVE), "flags": TransferFlag.PENDING}
        batches = [
            [transfer(2001, acme, globex[Kind.CPU], 50, code=int(Code.TRANSFER))],
            [transfer(2002, acme, escrow, 40, timeout_seconds=1, **pending)],
            [transfer(2003, acme, escrow, 30, timeout_seconds=3600, **pending)],
            [Transfer(2004, pending_id=2003, flags=TransferFlag.VOID_PENDING)],
        ]
        for batch in batches:
            assert all(o.ok for o in store.create_transfers(batch, ledger.now()))
        ledger.checkpoint()  # 2
        assert store.create_transfers(
            [transfer(2005, acme, escrow, 20, timeout_seconds=7200, **pending)], ledger.now()
        )[0].ok
        failed = store.create_transfers(
            [transfer(2006, acme, globex[Kind.CPU], 10**9, code=int(Code.TRANSFER))],
            ledger.now(),
        )
        assert failed[0].result.label == "exceeds_credits"  # recorded (A9)
        (expired,) = store.expire_due(ledger.now() + 5 * SECOND)
        assert expired.ok
        ledger.checkpoint()  # 3
        # An entry after the newest checkpoint.
        tail = [transfer(2007, globex[Kind.CPU], acme, 5, code=int(Code.TRANSFER))]
        assert store.create_transfers(tail, ledger.now())[0].ok
        if engine.dialect.name == "sqlite":
            with engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return ledger.signer.verifier().verifier_key()
    finally:
        engine.dispose()


@dataclass
class Template:
    backend: str
    vkey: str
    # SQLite: the template file. PostgreSQL: the template schema.
    where: str
    admin: sa.Engine

    def url_of(self, where: str) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{where}"
        separator = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{separator}options=-csearch_path%3D{where}"

    @property
    def url(self) -> str:
        return self.url_of(self.where)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Template]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("tamper-template") / "orbitq.db"
        vkey = populate(f"sqlite:///{path}")
        admin = sa.create_engine(f"sqlite:///{path}")
        yield Template("sqlite", vkey, str(path), admin)
        admin.dispose()
        return
    require_postgres()
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    schema = f"tpl_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        template = Template("postgres", "", schema, admin)
        template.vkey = populate(template.url)
        yield template
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@dataclass
class Copy:
    """One case's own copy of the template, and a connection to tamper with it."""

    url: str
    conn: sa.Connection


@pytest.fixture
def fresh(template: Template, tmp_path: Path) -> Iterator[Callable[[], Copy]]:
    """Makes copies of the template (each case of a test tampers with its own)."""
    made: list[tuple[sa.Engine, str | None]] = []

    def make() -> Copy:
        if template.backend == "sqlite":
            path = tmp_path / f"case-{len(made)}.db"
            shutil.copyfile(template.where, path)
            engine = sa.create_engine(template.url_of(str(path)), poolclass=sa.NullPool)
            made.append((engine, None))
            return Copy(template.url_of(str(path)), engine.connect())
        schema = f"c_{secrets.token_hex(6)}"
        statements = [f"CREATE SCHEMA {schema}"]
        for table in LEDGER_TABLES:
            source = f"{template.where}.{table.name}"
            statements.append(f"CREATE TABLE {schema}.{table.name} (LIKE {source} INCLUDING ALL)")
            statements.append(f"INSERT INTO {schema}.{table.name} SELECT * FROM {source}")
        with template.admin.connect() as conn:
            conn.exec_driver_sql("; ".join(statements))  # one round trip
        engine = sa.create_engine(template.url_of(schema), poolclass=sa.NullPool)
        made.append((engine, schema))
        return Copy(template.url_of(schema), engine.connect())

    try:
        yield make
    finally:
        for engine, _ in made:
            engine.dispose()
        schemas = [schema for _, schema in made if schema is not None]
        if schemas:
            with template.admin.connect() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {', '.join(schemas)} CASCADE")


# -- what the template holds, to know what a message must name -----------------------------------


@dataclass(frozen=True)
class Facts:
    """Where each row's story is told in the log: the entry that created each account, the
    entry of each transfer (pending status rows name their pending transfer's), the sizes of
    the stored checkpoints."""

    account_entry: dict[int, int]
    transfer_entry: dict[bytes, int]
    checkpoint_sizes: list[int]
    log_size: int


@pytest.fixture(scope="module")
def facts(template: Template) -> Facts:
    with template.admin.connect() as conn:
        if template.backend == "postgres":
            conn.exec_driver_sql(f"SET search_path TO {template.where}")
        entries = conn.exec_driver_sql("SELECT idx, data FROM ledger_entries ORDER BY idx").all()
        account_entry = {}
        for idx, data in entries:
            created = decode_entry(bytes(data)).account
            if created is not None:
                account_entry[created.id] = int(idx)
        transfers = conn.exec_driver_sql("SELECT id, entry_index FROM ledger_transfers").all()
        sizes = conn.exec_driver_sql("SELECT size FROM ledger_checkpoints ORDER BY size").all()
        if template.backend == "postgres":
            conn.exec_driver_sql("SET search_path TO DEFAULT")
    return Facts(
        account_entry,
        {bytes(t_id): int(entry) for t_id, entry in transfers},
        [int(size) for (size,) in sizes],
        len(entries),
    )


def names_of(table: sa.Table, row: sa.Row[Any], facts: Facts) -> tuple[str, ...]:
    """What the CLI's message may name for a tampered `row` of `table` (one must appear)."""
    values = row._mapping
    match table.name:
        case "ledger_entries":
            return (f"entry {values['idx']}",)
        case "ledger_transfers":
            transfer_id = bytes(values["id"])
            return (f"entry {facts.transfer_entry[transfer_id]}", transfer_id.hex())
        case "ledger_pending":
            transfer_id = bytes(values["id"])
            return (f"entry {facts.transfer_entry[transfer_id]}", transfer_id.hex())
        case "ledger_accounts":
            account_id = values["id"]
            return (f"account {account_id}", f"entry {facts.account_entry[account_id]}")
        case "ledger_evidence":
            return (f"entry {values['entry_index']}",)
        case "ledger_checkpoints":
            size = values["size"]
            later = [s for s in facts.checkpoint_sizes if s > size]
            return (f"checkpoint {size}",) + (
                (f"checkpoint {later[0]}",) if later else ("head row: ",)
            )
        case "ledger_head":
            return ("head row",)
    raise AssertionError(f"table {table.name} has no naming rule: add one to names_of")


# -- tampering ---------------------------------------------------------------------------------


def key_of(table: sa.Table) -> sa.Column[Any]:
    (column,) = table.primary_key.columns
    return column


def rows_of(conn: sa.Connection, table: sa.Table) -> list[sa.Row[Any]]:
    return list(conn.execute(sa.select(table).order_by(key_of(table))).all())


def changed(value: Any, taken: set[Any]) -> Any:
    """`value` changed the way its type allows, to a value no row of its column has."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        for step in (1, -1, 2, -2, 3, -3, 1000):
            if value + step not in taken:
                return value + step
    if isinstance(value, bytes | memoryview):
        original = bytes(value) or b"\x00"
        for at, bit in ((-1, 0x01), (-1, 0x40), (0, 0x80), (0, 0x01)):
            raw = bytearray(original)
            raw[at] ^= bit
            if bytes(raw) not in taken:
                return bytes(raw)
    if isinstance(value, str):
        text = value.rstrip("\n")
        flipped = text[:-1] + chr(ord(text[-1]) ^ 0x01) if text else "x"
        return flipped + value[len(text) :]
    raise AssertionError(f"no way to change a {type(value).__name__}: add one to changed()")


def filled(column: sa.Column[Any], taken: set[Any]) -> Any:
    """A value of `column`'s type for a NULL, one no row of the column has."""
    kind = column.type
    try:
        python_type = kind.python_type
    except NotImplementedError:
        python_type = None
    if python_type is int:
        return max((v for v in taken if v is not None), default=0) + 1
    if python_type is bytes:
        return b"\x5a" * (getattr(kind, "length", None) or 16)
    if python_type is str or isinstance(getattr(kind, "impl", None), sa.String):
        return "x"
    raise AssertionError(f"no way to fill a {kind}: add one to filled()")


def setter(
    table: sa.Table, row: sa.Row[Any], values: dict[str, Any]
) -> Callable[[sa.Connection], None]:
    """Tampering that sets `values` in `row` of `table`."""
    key = key_of(table)

    def tamper(conn: sa.Connection) -> None:
        conn.execute(sa.update(table).where(key == row._mapping[key.name]).values(values))

    return tamper


@dataclass(frozen=True)
class Case:
    what: str
    names: tuple[str, ...]
    tamper: Callable[[sa.Connection], None]


@dataclass
class Outcome:
    tried: int = 0
    detected: int = 0
    refused: int = 0  # the database itself refused the tampering (a constraint it enforces)
    refusals: list[str] = field(default_factory=list)


def run(
    cases: list[Case],
    fresh: Callable[[], Copy],
    vkey: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> Outcome:
    """Each case on its own copy; every miss is collected, then all are reported at once."""
    outcome = Outcome()
    misses: list[str] = []
    for number, case in enumerate(cases):
        copy = fresh()
        try:
            with copy.conn.begin():
                case.tamper(copy.conn)
        except sa.exc.DBAPIError as error:
            # The database itself refuses this tampering: it cannot happen, nothing to catch.
            outcome.refused += 1
            outcome.refusals.append(f"{case.what}: {error.orig}")
            continue
        finally:
            copy.conn.close()
        outcome.tried += 1
        capsys.readouterr()
        trust = tmp_path / f"trust-{number}"
        code = main(
            [
                "ledger",
                "verify",
                "--db",
                copy.url,
                "--vkey",
                vkey,
                "--trust-dir",
                str(trust),
                "--json",
            ]
        )
        said = capsys.readouterr().err
        if code != EXIT_INTEGRITY or "ledger verification FAILED" not in said:
            misses.append(f"{case.what}: exit {code}, {said.strip() or 'no message'}")
        elif not any(name in said for name in case.names):
            misses.append(f"{case.what}: the message names none of {case.names}: {said.strip()}")
        else:
            outcome.detected += 1
    assert not misses, "tampering ledger verify did not catch:\n" + "\n".join(misses)
    return outcome


# -- the cases -----------------------------------------------------------------------------------


def template_rows(template: Template, table: sa.Table) -> list[sa.Row[Any]]:
    with template.admin.connect() as conn:
        if template.backend == "postgres":
            conn.exec_driver_sql(f"SET search_path TO {template.where}")
        rows = rows_of(conn, table)
        if template.backend == "postgres":
            conn.exec_driver_sql("SET search_path TO DEFAULT")
    return rows


def picked(rows: list[sa.Row[Any]]) -> list[sa.Row[Any]]:
    """The middle row and the last (once if they are one)."""
    if not rows:
        return []
    middle, last = rows[len(rows) // 2], rows[-1]
    return [middle] if middle is last else [middle, last]


def column_cases(
    table: sa.Table, column: sa.Column[Any], rows: list[sa.Row[Any]], facts: Facts
) -> list[Case]:
    name = column.name
    taken = {row._mapping[name] for row in rows}
    valued = [row for row in rows if row._mapping[name] is not None]
    key = key_of(table).name
    cases = []
    for row in picked(valued):
        new = changed(row._mapping[name], taken)
        names = names_of(table, row, facts)
        if name == key:
            # The row now goes by its new key, and the message may name it by that.
            old = _show(row._mapping[key])
            names += tuple(text.replace(old, _show(new)) for text in names if old in text)
        cases.append(
            Case(
                f"{table.name}.{name} changed in row {key}={_show(row._mapping[key])}",
                names,
                setter(table, row, {name: new}),
            )
        )
    if column.nullable and valued:
        row = valued[len(valued) // 2]
        cases.append(
            Case(
                f"{table.name}.{name} set to NULL in row {key}={_show(row._mapping[key])}",
                names_of(table, row, facts),
                setter(table, row, {name: None}),
            )
        )
    nulls = [row for row in rows if row._mapping[name] is None]
    if nulls:
        row = nulls[len(nulls) // 2]
        value = filled(column, taken)
        cases.append(
            Case(
                f"{table.name}.{name} filled in row {key}={_show(row._mapping[key])}",
                names_of(table, row, facts),
                setter(table, row, {name: value}),
            )
        )
    return cases


def deletion_cases(table: sa.Table, rows: list[sa.Row[Any]], facts: Facts) -> list[Case]:
    key = key_of(table)

    def delete(conn: sa.Connection, row: sa.Row[Any]) -> None:
        conn.execute(sa.delete(table).where(key == row._mapping[key.name]))

    return [
        Case(
            f"{table.name} row {key.name}={_show(row._mapping[key.name])} deleted",
            names_of(table, row, facts),
            partial(delete, row=row),
        )
        for row in picked(rows)
    ]


def swap_cases(table: sa.Table, rows: list[sa.Row[Any]], facts: Facts) -> list[Case]:
    """Two rows whose other columns differ exchange them (by exchanging keys, which the
    database's unique indexes allow where swapping the columns one by one would not)."""
    key = key_of(table)
    others = [column.name for column in table.columns if column is not key]

    def values(row: sa.Row[Any]) -> tuple[Any, ...]:
        return tuple(row._mapping[name] for name in others)

    cases = []
    for first in picked(rows):
        second = next(
            (row for row in rows if row is not first and values(row) != values(first)), None
        )
        if second is None:
            continue
        a, b = first._mapping[key.name], second._mapping[key.name]
        parking = max(a, b) + 10**6 if isinstance(a, int) else b"\xff" * len(a)

        def swap(conn: sa.Connection, a: Any = a, b: Any = b, parking: Any = parking) -> None:
            for old, new in ((a, parking), (b, a), (parking, b)):
                conn.execute(sa.update(table).where(key == old).values({key.name: new}))

        cases.append(
            Case(
                f"{table.name} rows {key.name}={_show(a)} and {_show(b)} swapped",
                names_of(table, first, facts) + names_of(table, second, facts),
                swap,
            )
        )
    return cases


def truncation_cases(facts: Facts) -> list[Case]:
    """The log cut at an entry, with and without the head row made to agree."""
    entries = SQLModel.metadata.tables["ledger_entries"]
    head = SQLModel.metadata.tables["ledger_head"]
    newest = facts.checkpoint_sizes[-1]
    cuts = {"the middle": facts.log_size // 2, "the newest checkpoint": newest, "the start": 0}
    cases = []
    for label, at in cuts.items():
        later = tuple(f"entry {index}" for index in range(at, facts.log_size))
        covering = tuple(f"checkpoint {size}" for size in facts.checkpoint_sizes if size > at)

        def cut(conn: sa.Connection, at: int = at, fix_head: bool = False) -> None:
            conn.execute(sa.delete(entries).where(entries.c.idx >= at))
            if fix_head:
                conn.execute(sa.update(head).values(size=at))

        cases.append(Case(f"the log truncated at {label} ({at})", later + covering, cut))
        cases.append(
            Case(
                f"the log truncated at {label} ({at}), the head's size set to match",
                later + covering + ("head row",),
                partial(cut, fix_head=True),
            )
        )
    return cases


def _show(value: Any) -> str:
    return bytes(value).hex() if isinstance(value, bytes | memoryview) else str(value)


# -- the tests -----------------------------------------------------------------------------------

COLUMNS = [(table.name, column.name) for table in LEDGER_TABLES for column in table.columns]


def test_the_cases_cover_the_migrated_schema(template: Template) -> None:
    """The tables and columns the cases are made from are exactly the database's ledger
    tables, and no column is exempt without a reason naming a real column."""
    with template.admin.connect() as conn:
        inspector = sa.inspect(conn)
        schema = template.where if template.backend == "postgres" else None
        found = {
            name: {column["name"] for column in inspector.get_columns(name, schema=schema)}
            for name in inspector.get_table_names(schema=schema)
            if name.startswith("ledger_")
        }
    assert found == {table.name: {c.name for c in table.columns} for table in LEDGER_TABLES}
    assert set(EXEMPT) <= set(COLUMNS)
    assert all(reason.strip() for reason in EXEMPT.values())


@pytest.mark.parametrize(("table_name", "column_name"), COLUMNS, ids=[".".join(c) for c in COLUMNS])
def test_every_column_changed_is_caught(
    template: Template,
    facts: Facts,
    fresh: Callable[[], Copy],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    table_name: str,
    column_name: str,
) -> None:
    table = SQLModel.metadata.tables[table_name]
    cases = column_cases(table, table.c[column_name], template_rows(template, table), facts)
    assert cases, f"{table_name}.{column_name}: the template has no row to tamper with"
    outcome = run(cases, fresh, template.vkey, tmp_path, capsys)
    tally(template, outcome)
    assert outcome.tried + outcome.refused == len(cases)
    assert outcome.tried >= 1


@pytest.mark.parametrize("table_name", [table.name for table in LEDGER_TABLES])
def test_every_row_deleted_or_swapped_is_caught(
    template: Template,
    facts: Facts,
    fresh: Callable[[], Copy],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    table_name: str,
) -> None:
    table = SQLModel.metadata.tables[table_name]
    rows = template_rows(template, table)
    swaps = swap_cases(table, rows, facts)
    # A table of one row (the head) has nothing to swap; every other has rows that differ.
    assert swaps or len(rows) == 1, f"{table_name}: no two rows to swap"
    cases = deletion_cases(table, rows, facts) + swaps
    assert cases
    outcome = run(cases, fresh, template.vkey, tmp_path, capsys)
    tally(template, outcome)
    assert outcome.tried == len(cases)


def test_a_truncated_log_is_caught(
    template: Template,
    facts: Facts,
    fresh: Callable[[], Copy],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cases = truncation_cases(facts)
    outcome = run(cases, fresh, template.vkey, tmp_path, capsys)
    tally(template, outcome)
    assert outcome.tried == len(cases)


def test_the_untampered_copy_passes(
    template: Template,
    fresh: Callable[[], Copy],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The control: without tampering, the same copy and command pass, so every failure
    above is the tampering's."""
    copy = fresh()
    copy.conn.close()
    code = main(
        [
            "ledger",
            "verify",
            "--db",
            copy.url,
            "--vkey",
            template.vkey,
            "--trust-dir",
            str(tmp_path / "trust"),
            "--json",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert '"ok": true' in capsys.readouterr().out


def tally(template: Template, outcome: Outcome) -> None:
    """Counts for the closing note of issue 12 (ORBITQ_TAMPER_TALLY=file appends them)."""
    path = os.environ.get("ORBITQ_TAMPER_TALLY")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{template.backend} {outcome.tried} {outcome.detected} {outcome.refused}\n")
            out.writelines(f"# {template.backend} refused: {text}\n" for text in outcome.refusals)
