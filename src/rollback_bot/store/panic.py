"""The daily panic runs' state: since when they are kept, each day's run once, and the open pre-launch alerts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select, update

from rollback_bot.store.database import insert_for
from rollback_bot.store.models import Event, PanicRun, PanicSchedule


def kept_since(session: Session, *, playbook: str, now: datetime) -> datetime:
    """When this database started keeping the playbook's panic runs (now, the first time it is asked)."""
    insert = insert_for(session)
    session.exec(
        insert(PanicSchedule).values(playbook=playbook, since=now).on_conflict_do_nothing(index_elements=["playbook"])
    )
    return session.exec(select(PanicSchedule.since).where(PanicSchedule.playbook == playbook)).one()


def last_day(session: Session, *, playbook: str) -> str | None:
    """The latest day with a run recorded (YYYY-MM-DD), or None."""
    stmt = select(PanicRun.day).where(PanicRun.playbook == playbook).order_by(col(PanicRun.day).desc()).limit(1)
    return session.exec(stmt).first()


def claim_day(
    session: Session, *, playbook: str, day: str, due_at: datetime, status: str, at: datetime, summary: str
) -> int | None:
    """Record a day's run; its id, or None when another process recorded that day first."""
    insert = insert_for(session)
    stmt = (
        insert(PanicRun)
        .values(playbook=playbook, day=day, due_at=due_at, status=status, at=at, summary=summary)
        .on_conflict_do_nothing(index_elements=["playbook", "day"])
        .returning(col(PanicRun.id))
    )
    found = session.execute(stmt).scalar()
    return None if found is None else int(found)


def unacknowledged(session: Session, *, playbooks: list[str] | None = None) -> list[PanicRun]:
    """Failed runs nobody has acknowledged yet, oldest first."""
    stmt = select(PanicRun).where(PanicRun.status == "failed", col(PanicRun.acknowledged_by).is_(None))
    if playbooks is not None:
        stmt = stmt.where(col(PanicRun.playbook).in_(playbooks))
    return list(session.exec(stmt.order_by(col(PanicRun.id))))


def reminders_due(session: Session, *, playbook: str, last_before: datetime) -> list[PanicRun]:
    """The playbook's unacknowledged failures last recorded or reminded of before `last_before`."""
    last = func.coalesce(col(PanicRun.reminded_at), col(PanicRun.at))
    stmt = select(PanicRun).where(
        PanicRun.playbook == playbook,
        col(PanicRun.status) == "failed",
        col(PanicRun.acknowledged_by).is_(None),
        last < last_before,
    )
    return list(session.exec(stmt.order_by(col(PanicRun.id))))


def mark_reminded(session: Session, *, run: PanicRun, at: datetime) -> bool:
    """Move the run's last reminder from what was read to `at`; True only for the one caller that did it."""
    was = (
        col(PanicRun.reminded_at).is_(None) if run.reminded_at is None else col(PanicRun.reminded_at) == run.reminded_at
    )
    result = session.exec(
        update(PanicRun)
        .where(col(PanicRun.id) == run.id, col(PanicRun.acknowledged_by).is_(None), was)
        .values(reminded_at=at)
    )
    return bool(result.rowcount)


def acknowledge(session: Session, *, run_id: int, user: str, at: datetime) -> bool:
    """Mark a failed run acknowledged; True only for the one caller that did it."""
    result = session.exec(
        update(PanicRun)
        .where(col(PanicRun.id) == run_id, col(PanicRun.status) == "failed", col(PanicRun.acknowledged_by).is_(None))
        .values(acknowledged_by=user, acknowledged_at=at)
    )
    return bool(result.rowcount)


def passed_values(session: Session, *, playbook: str, since: datetime) -> dict[str, list[float]]:
    """Each signal's values in the playbook's passed panic runs since `since` (from their timeline events)."""
    stmt = select(Event.details).where(Event.playbook == playbook, Event.kind == "panic.passed", col(Event.at) >= since)
    out: dict[str, list[float]] = {}
    for details in session.exec(stmt):
        seen: set[str] = set()
        for check in details.get("checks", []):
            signal, value = check.get("signal"), check.get("value")
            if isinstance(signal, str) and isinstance(value, int | float) and signal not in seen:
                seen.add(signal)  # one value per run and signal, whatever the number of checks on it
                out.setdefault(signal, []).append(float(value))
    return out
