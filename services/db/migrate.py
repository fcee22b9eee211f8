"""Apply the Alembic migrations to a database, safely from several replicas at once.

Owns: running `alembic upgrade head` on a given engine, under a PostgreSQL advisory lock so
two brokers starting together do not race. Does not own: the migration scripts' contents.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from orbitq.services.db.engine import write_transaction

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# An arbitrary constant naming orbitq's migration lock among PostgreSQL advisory locks.
_ADVISORY_LOCK_KEY = 0x6F726269


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with write_transaction(engine) as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
