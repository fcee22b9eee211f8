"""The node agents' tables (declared in orbitq.services.db.models, created by migration 0005):
handles for the agents package.

Owns: nothing but the handles; each module that writes a table says what its rows mean.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

from orbitq.services.db import models  # noqa: F401  (registers the tables)

NODE_AGENTS: sa.Table = SQLModel.metadata.tables["node_agents"]
TOKENS: sa.Table = SQLModel.metadata.tables["enrollment_tokens"]
TICKETS: sa.Table = SQLModel.metadata.tables["request_tickets"]
RECEIPT_REFUSALS: sa.Table = SQLModel.metadata.tables["receipt_refusals"]
TICKET_REFUSALS: sa.Table = SQLModel.metadata.tables["ticket_refusals"]
