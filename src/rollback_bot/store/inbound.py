"""Signed Slack requests already taken: Slack signs each delivery once, so the same signature again is a
replay (an attacker, or a proxy resending) and must change nothing."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, delete

from rollback_bot.store.database import insert_for
from rollback_bot.store.models import InboundRequest


def take(session: Session, *, signature: str, at: datetime) -> bool:
    """Record the request; False when it was taken before (the caller commits)."""
    insert = insert_for(session)
    done = session.exec(
        insert(InboundRequest).values(signature=signature, at=at).on_conflict_do_nothing(index_elements=["signature"])
    )
    return bool(done.rowcount)


def forget_before(session: Session, *, before: datetime) -> int:
    """Drop requests older than Slack's replay window: their timestamps are refused anyway."""
    return int(session.exec(delete(InboundRequest).where(col(InboundRequest.at) < before)).rowcount)
