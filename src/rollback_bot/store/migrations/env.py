"""Alembic environment: runs on the connection the Store hands over (see store.database.migrate)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from rollback_bot.store import models  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs batch mode to alter tables
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
