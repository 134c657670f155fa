"""Queries about readings, in one place: one insert per poll, the newest per signal, windows of history."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam, func, insert
from sqlmodel import Session, col, delete, select

from rollback_bot.store.models import ReadingRow


def insert_readings(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Every reading of a poll in one statement (executemany): playbook, signal, at, value, status, detail."""
    if rows:
        session.execute(insert(ReadingRow), list(rows))


# built once: constructing a statement costs more than running it on the (playbook, signal, at) index
_NEWEST = (
    select(ReadingRow)
    .where(col(ReadingRow.playbook) == bindparam("playbook"), col(ReadingRow.signal) == bindparam("signal"))
    .order_by(col(ReadingRow.at).desc(), col(ReadingRow.id).desc())
    .limit(1)
)


def newest(session: Session, *, playbook: str, signals: Iterable[str]) -> dict[str, ReadingRow]:
    """The newest reading of each named signal, whatever its age (one index lookup each: for a few signals)."""
    out = {}
    for name in signals:
        row = session.exec(_NEWEST, params={"playbook": playbook, "signal": name}).first()
        if row is not None:
            out[name] = row
    return out


def newest_since(session: Session, *, playbook: str, since: datetime) -> dict[str, ReadingRow]:
    """The newest reading of every signal read since `since`, in one query on the (playbook, at) index."""
    rows = session.exec(
        select(ReadingRow)
        .where(ReadingRow.playbook == playbook, col(ReadingRow.at) >= since)
        .order_by(col(ReadingRow.at), col(ReadingRow.id))
    )
    return {row.signal: row for row in rows}


def window(session: Session, *, playbook: str, signal: str, since: datetime) -> list[ReadingRow]:
    return list(
        session.exec(
            select(ReadingRow)
            .where(ReadingRow.playbook == playbook, ReadingRow.signal == signal, col(ReadingRow.at) >= since)
            .order_by(col(ReadingRow.at))
        )
    )


def prune(session: Session, *, older_than: datetime) -> int:
    deleted = session.exec(delete(ReadingRow).where(col(ReadingRow.at) < older_than))
    return int(deleted.rowcount or 0)


def between(session: Session, *, playbook: str, start: datetime, end: datetime) -> dict[str, list[ReadingRow]]:
    """Every stored reading of the playbook from `start` to `end`, per signal, oldest first (one query)."""
    out: dict[str, list[ReadingRow]] = {}
    rows = session.exec(
        select(ReadingRow)
        .where(ReadingRow.playbook == playbook, col(ReadingRow.at) >= start, col(ReadingRow.at) <= end)
        .order_by(col(ReadingRow.at), col(ReadingRow.id))
    )
    for row in rows:
        out.setdefault(row.signal, []).append(row)
    return out


def points_between(
    session: Session, *, playbook: str, start: datetime, end: datetime
) -> dict[str, list[tuple[datetime, float]]]:
    """`between` as (time, value) points, readings without a value left out: plain rows, no ORM objects (an
    export reads a day of them)."""
    table = ReadingRow.__table__  # type: ignore[attr-defined]
    out: dict[str, list[tuple[datetime, float]]] = {}
    rows = session.connection().execute(
        sa.select(table.c.signal, table.c.at, table.c.value)
        .where(table.c.playbook == playbook, table.c.at >= start, table.c.at <= end)
        .order_by(table.c.at, table.c.id)
    )
    for signal, at, value in rows:
        points = out.setdefault(signal, [])  # a signal with no value at all is there, with no points
        if value is not None:
            points.append((at, value))
    return out


def span(session: Session, *, playbook: str) -> tuple[datetime | None, datetime | None]:
    """The oldest and newest stored reading of the playbook (what retention kept)."""
    stmt = select(func.min(col(ReadingRow.at)), func.max(col(ReadingRow.at))).where(ReadingRow.playbook == playbook)
    oldest, newest_at = session.exec(stmt).one()
    return oldest, newest_at
