"""How far each playbook's channel events (no incident) have been posted to Slack."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from rollback_bot.store.models import Event, SlackCursor


def ensure(session: Session, *, playbook: str) -> None:
    """A playbook's first cursor starts after the events already stored (history is not replayed); an
    existing cursor is kept, so events recorded while Slack or the bot was away are still posted."""
    newest = session.exec(select(Event.id).order_by(col(Event.id).desc()).limit(1)).first() or 0
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(SlackCursor).values(playbook=playbook, last_event_id=newest)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["playbook"]))
