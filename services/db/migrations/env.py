"""Alembic environment: runs on the connection `orbitq.services.db.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import orbitq.ledger.store.tables
import orbitq.services.db.models

assert orbitq.ledger.store.tables

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through orbitq.services.db.migrate(engine)")
context.configure(connection=connection, target_metadata=SQLModel.metadata)
with context.begin_transaction():
    context.run_migrations()
