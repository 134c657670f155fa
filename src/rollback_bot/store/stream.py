"""Long reads streamed from the database in batches, on a server-side cursor where the database has one
(PostgreSQL), so a 100,000-event timeline is never held whole in memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

BATCH = 5000


def rows(session: Session, stmt: sa.Select[Any], batch: int = BATCH) -> Iterator[Any]:
    """The rows of a Core select, `batch` at a time. Select columns as `raw(...)` where the per-row type
    processing is not needed (it is most of the cost of a long read)."""
    # per statement: Connection.execution_options() would change the session's connection for good
    result = session.connection().execute(stmt.execution_options(yield_per=batch))
    for part in result.partitions():
        yield from part


def raw(column: Any) -> Any:
    """A column as the driver returns it (SQLite: times and JSON as text; PostgreSQL: datetime and dict)."""
    return sa.type_coerce(column, sa.Text).label(column.key)
