"""The click inbox: a click is written here (one short transaction) before Slack gets its 200, then worked off
under a lease by whichever process takes it; a process killed while holding one leaves it to another once the
lease runs out. Recording what the click does happens once whatever happens here: the flow's transaction
takes the request's key (store/inbound.take_current), so a second worker on the same click rolls back."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, delete, or_, select, update

from rollback_bot.store.models import ClickInbox


def accept(conn: Connection, *, key: str, at: datetime, click: str) -> bool:
    """Write the click; False when this key was taken before (a replay). One statement, on a connection in
    autocommit (Store.one_statement): it runs before every click's 200, so it is one round trip, and built once
    per database (building it cost more than running it)."""
    stmt = _ACCEPT[conn.dialect.name]
    return conn.execute(stmt, {"key": key, "at": at, "click": click}).first() is not None


def _accept(insert: Any) -> Any:
    table = ClickInbox.__table__  # type: ignore[attr-defined]
    return (
        insert(table)
        .values(
            key=bindparam("key", type_=table.c.key.type),
            received_at=bindparam("at", type_=table.c.received_at.type),
            click=bindparam("click", type_=table.c.click.type),
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(table.c.key)
    )


_ACCEPT = {"postgresql": _accept(pg_insert), "sqlite": _accept(sqlite_insert)}


def claim(session: Session, *, key: str, by: str, now: datetime, lease: timedelta) -> ClickInbox | None:
    """Take the click for `lease` when it is not done and nobody holds it (or their lease ran out)."""
    stmt = (
        update(ClickInbox)
        .where(
            col(ClickInbox.key) == key,
            col(ClickInbox.done_at).is_(None),
            or_(col(ClickInbox.claimed_until).is_(None), col(ClickInbox.claimed_until) < now),
        )
        .values(claimed_by=by, claimed_until=now + lease, attempts=col(ClickInbox.attempts) + 1)
    )
    if session.exec(stmt).rowcount != 1:
        return None
    return session.get(ClickInbox, key, populate_existing=True)


def finish(session: Session, *, key: str, by: str, now: datetime, answer: str) -> bool:
    """Done, with the answer given; False when someone else's lease took it over meanwhile."""
    stmt = (
        update(ClickInbox)
        .where(col(ClickInbox.key) == key, col(ClickInbox.claimed_by) == by, col(ClickInbox.done_at).is_(None))
        .values(done_at=now, answer=answer, claimed_until=None)
    )
    return bool(session.exec(stmt).rowcount == 1)


def waiting(session: Session, *, now: datetime, received_before: datetime, limit: int = 50) -> list[str]:
    """Clicks not done that nobody holds, oldest first: those received before `received_before`."""
    stmt = (
        select(col(ClickInbox.key))
        .where(
            col(ClickInbox.done_at).is_(None),
            col(ClickInbox.received_at) <= received_before,
            or_(col(ClickInbox.claimed_until).is_(None), col(ClickInbox.claimed_until) < now),
        )
        .order_by(col(ClickInbox.received_at))
        .limit(limit)
    )
    return list(session.exec(stmt).all())


def backlog(session: Session) -> tuple[int, datetime | None]:
    """How many clicks are not done yet, and since when the oldest waits (for /healthz and /metrics)."""
    stmt = select(func.count(), func.min(col(ClickInbox.received_at))).where(col(ClickInbox.done_at).is_(None))
    count, oldest = session.exec(stmt).one()
    return int(count or 0), oldest


def forget_done_before(session: Session, *, before: datetime) -> int:
    """Drop clicks done before `before` (what they did is in the timeline; a replay that old is refused)."""
    stmt = delete(ClickInbox).where(col(ClickInbox.done_at).is_not(None), col(ClickInbox.done_at) < before)
    return int(session.exec(stmt).rowcount)
