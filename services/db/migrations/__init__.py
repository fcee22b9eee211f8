"""Alembic migrations of the broker's database; applied on start by `migrate()`."""
