"""create_engine's `durable`: acknowledged commits are flushed by default; only a throw-away
database (the simulator's) turns that off, and it does so on both databases."""

from __future__ import annotations

import sqlalchemy as sa

from orbitq.services.db.engine import create_engine


def _flush_setting(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            value = connection.exec_driver_sql("PRAGMA synchronous").scalar_one()
            return {0: "off", 2: "full"}.get(int(value), str(value))
        return str(connection.exec_driver_sql("SHOW synchronous_commit").scalar_one())


def test_commits_are_flushed_unless_the_database_is_throw_away(db_url: str) -> None:
    durable = create_engine(db_url)
    scratch = create_engine(db_url, durable=False)
    try:
        assert _flush_setting(durable) in ("full", "on")
        assert _flush_setting(scratch) == "off"
        # The URL's own options (the test schema's search_path on PostgreSQL) still apply.
        with scratch.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE durability_probe (x INTEGER)")
            connection.exec_driver_sql("INSERT INTO durability_probe VALUES (1)")
        with durable.connect() as connection:
            assert connection.exec_driver_sql("SELECT x FROM durability_probe").scalar_one() == 1
    finally:
        durable.dispose()
        scratch.dispose()
