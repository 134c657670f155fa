"""State of the watching itself, in one place: trigger states, signal health, poll groups. Loaded once per
playbook per poll; only what changed is written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, SQLModel, col, select, update

from rollback_bot.store.database import insert_for
from rollback_bot.store.models import PollStateRow, SignalHealthRow, TriggerStateRow


def upsert(session: Session, model: type[SQLModel], rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> None:
    """Insert or update rows by primary key, in one statement (SQLite and PostgreSQL)."""
    if not rows:
        return
    stmt = insert_for(session)(model)
    columns = [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns})
    session.execute(stmt, list(rows))


def trigger_states(session: Session, *, playbook: str) -> dict[str, TriggerStateRow]:
    rows = session.exec(select(TriggerStateRow).where(TriggerStateRow.playbook == playbook))
    return {r.trigger: r for r in rows}


def signal_health(session: Session, *, playbook: str) -> dict[str, SignalHealthRow]:
    rows = session.exec(select(SignalHealthRow).where(SignalHealthRow.playbook == playbook))
    return {r.signal: r for r in rows}


def save_signal_health(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    upsert(session, SignalHealthRow, rows, ("playbook", "signal"))


def poll_states(session: Session, *, playbooks: Sequence[str] | None = None) -> list[PollStateRow]:
    query = select(PollStateRow).order_by(col(PollStateRow.playbook), col(PollStateRow.poll_group))
    if playbooks is not None:
        query = query.where(col(PollStateRow.playbook).in_(list(playbooks)))
    return list(session.exec(query))


def poll_started(session: Session, *, playbook: str, group: str, every_s: float, signals: int, at: datetime) -> None:
    row = {"playbook": playbook, "poll_group": group, "every_s": every_s, "signals": signals, "started_at": at}
    stmt = insert_for(session)(PollStateRow).values(duration_s=0.0, behind=False, **row)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["playbook", "poll_group"],
            set_={"every_s": every_s, "signals": signals, "started_at": at},
        )
    )


def poll_finished(session: Session, *, playbook: str, group: str, at: datetime, duration_s: float) -> None:
    session.exec(
        update(PollStateRow)
        .where(col(PollStateRow.playbook) == playbook, col(PollStateRow.poll_group) == group)
        .values(finished_at=at, duration_s=duration_s)
    )


def set_behind(session: Session, *, playbook: str, group: str, behind: bool) -> bool:
    """Flip a poll group's 'behind' flag; True only for the one caller that changed it (once per episode)."""
    result = session.exec(
        update(PollStateRow)
        .where(
            col(PollStateRow.playbook) == playbook,
            col(PollStateRow.poll_group) == group,
            col(PollStateRow.behind) == (not behind),
        )
        .values(behind=behind)
    )
    return bool(result.rowcount)


def ensure_group(session: Session, *, playbook: str, group: str, every_s: float, signals: int) -> None:
    """Make sure a poll group has a row (so 'behind' can be recorded before its first poll ever starts)."""
    row = {"playbook": playbook, "poll_group": group, "every_s": every_s, "signals": signals}
    stmt = insert_for(session)(PollStateRow).values(duration_s=0.0, behind=False, **row)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["playbook", "poll_group"]))
