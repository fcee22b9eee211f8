"""The migrated schema is exactly SQLModel.metadata, on SQLite and PostgreSQL.

A migration that forgets a column, an index or a type change would otherwise only show up on
the database that happens to need it. alembic's `compare_metadata` reflects the migrated
database and lists every difference from the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import orbitq.ledger.store.tables
import orbitq.services.db.models
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate

assert orbitq.ledger.store.tables
assert orbitq.services.db.models


def _differences(engine: sa.Engine, metadata: sa.MetaData) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_migrations_create_exactly_the_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        migrate(engine)
        assert _differences(engine, SQLModel.metadata) == []
        # The comparison does see differences (a control, so an empty list means something).
        changed = sa.MetaData()
        for table in SQLModel.metadata.tables.values():
            table.to_metadata(changed)
        sa.Table("not_migrated", changed, sa.Column("id", sa.Integer, primary_key=True))
        changed.tables["contacts"].append_column(sa.Column("extra", sa.Integer))
        found = {str(difference) for difference in _differences(engine, changed)}
        assert any("not_migrated" in text for text in found)
        assert any("extra" in text for text in found)
    finally:
        engine.dispose()


def test_migrating_twice_changes_nothing(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        migrate(engine)
        migrate(engine)
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT id, version FROM contact_plan").all()
        assert [tuple(row) for row in rows] == [(1, 0)]
    finally:
        engine.dispose()
