"""orbitq.services.db: database engines, the broker's own tables and the Alembic migrations."""
