"""Long reads streamed from the database in batches, on a server-side cursor where the database has one
(PostgreSQL), so a 100,000-event timeline is never held whole in memory."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from rollback_bot.store.models import ChainHead

BATCH = 5000
SPLIT_AT = 20_000  # events: a longer chain is read in two halves at once where the caller can fork (the CLI)


def sqlite_time(text: str) -> bool:
    """Whether a time read as text is SQLite's own (naive UTC, `2026-03-01 09:00:00.864000`), which readers
    rewrite without parsing. PostgreSQL's text of a time to the millisecond has the same length and shape up to
    its offset (`2026-03-01 09:00:00.864+00`): only SQLite's ends in six digits."""
    return len(text) == 26 and text[10] == " " and text[19] == "." and text[20:].isdigit()


def halfway(session: Session, chain: str) -> int | None:
    """Where a long chain is cut in two (the number of the first event of its second half, from the chain
    head), else None."""
    head = session.exec(select(ChainHead.seq).where(ChainHead.chain == chain)).first()
    return head // 2 + 1 if head is not None and head >= SPLIT_AT else None


def rows(session: Session, stmt: sa.Select[Any], batch: int = BATCH) -> Iterator[Any]:
    """The rows of a Core select, `batch` at a time. Select columns as `raw(...)` where the per-row type
    processing is not needed (it is most of the cost of a long read)."""
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        values = [compiled.params[name] for name in compiled.positiontup or ()]
        if all(type(v) in _PLAIN for v in values):  # nothing for SQLAlchemy to convert on the way in or out
            yield from _driver_rows(conn, str(compiled), values, batch)
            return
    # per statement: Connection.execution_options() would change the session's connection for good
    result = conn.execute(stmt.execution_options(yield_per=batch))
    try:
        for part in result.partitions():
            yield from part
    finally:  # also where the reader stopped early: PostgreSQL's server-side cursor is closed, not left to GC
        with contextlib.suppress(sa.exc.DBAPIError, sa.exc.ResourceClosedError):  # its connection went first
            result.close()


_PLAIN = (int, str, float)


def _driver_rows(conn: sa.Connection, sql: str, values: list[Any], batch: int) -> Iterator[Any]:
    """SQLite's own cursor, in the session's transaction: SQLAlchemy's Row objects are a third of the time of
    reading 100,000 events."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, values)
        while part := cursor.fetchmany(batch):
            yield from part
    finally:  # also where the reader stopped early (an export interrupted), perhaps after the connection closed
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed with it: nothing left to free
            cursor.close()


def raw(column: Any) -> Any:
    """A column as the driver returns it (SQLite: times and JSON as text; PostgreSQL: datetime and dict)."""
    return sa.type_coerce(column, sa.Text).label(column.key)
