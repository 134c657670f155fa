"""The one writer of timeline events. Called inside the caller's transaction, so an event and the
state change it describes commit together or not at all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from rollback_bot.store.models import Event

KINDS = frozenset(
    {
        "signal.fired",
        "signal.cleared",
        "signal.lost",
        "signal.restored",
        "kpi.hold",
        "incident.opened",
        "trigger.attached",
        "step.entered",
        "ladder.completed",
        "ack",
        "ack.denied",
        "approval",
        "approval.denied",
        "approval.duplicate",
        "action.started",
        "action.succeeded",
        "action.failed",
        "note",
        "reminder",
        "incident.held",
        "incident.released",
        "incident.resolved",
        "drill.fault",
        "drill.recovered",
    }
)


def record(
    session: Session,
    *,
    playbook: str,
    kind: str,
    at: datetime,
    summary: str,
    incident_id: int | None = None,
    actor: str | None = None,
    role: str | None = None,
    details: dict[str, Any] | None = None,
) -> Event:
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    ev = Event(
        incident_id=incident_id,
        playbook=playbook,
        at=at,
        kind=kind,
        actor=actor,
        role=role,
        summary=summary,
        details=details or {},
    )
    session.add(ev)
    session.flush()
    return ev


def timeline(session: Session, incident_id: int) -> list[Event]:
    stmt = select(Event).where(Event.incident_id == incident_id).order_by(col(Event.at), col(Event.id))
    return list(session.exec(stmt))
