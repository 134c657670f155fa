"""How far each playbook's channel events (no incident) have been posted to Slack."""

from __future__ import annotations

from sqlmodel import Session, col, select

from rollback_bot.store.database import insert_for
from rollback_bot.store.models import Event, SlackCursor


def ensure(session: Session, *, playbook: str) -> None:
    """A playbook's first cursor starts after the events already stored (history is not replayed); an
    existing cursor is kept, so events recorded while Slack or the bot was away are still posted."""
    newest = session.exec(select(Event.id).order_by(col(Event.id).desc()).limit(1)).first() or 0
    stmt = insert_for(session)(SlackCursor).values(playbook=playbook, last_event_id=newest)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["playbook"]))
