"""Queries about approvals and action runs, in one place."""

from __future__ import annotations

from collections import defaultdict

from sqlmodel import Session, col, select

from rollback_bot.store.models import ActionRun, Approval


def approvals_of(session: Session, *, incident_id: int, action_id: str) -> list[Approval]:
    stmt = select(Approval).where(Approval.incident_id == incident_id, Approval.action_id == action_id)
    return list(session.exec(stmt.order_by(col(Approval.at), col(Approval.id))))


def approvals_by_action(session: Session, *, incident_id: int) -> dict[str, list[Approval]]:
    """Every approval of an incident, per action, oldest first (one query)."""
    out: defaultdict[str, list[Approval]] = defaultdict(list)
    stmt = select(Approval).where(Approval.incident_id == incident_id).order_by(col(Approval.at), col(Approval.id))
    for a in session.exec(stmt):
        out[a.action_id].append(a)
    return dict(out)


def runs_of(session: Session, *, incident_id: int, action_id: str) -> list[ActionRun]:
    stmt = select(ActionRun).where(ActionRun.incident_id == incident_id, ActionRun.action_id == action_id)
    return list(session.exec(stmt))


def runs_by_action(session: Session, *, incident_id: int) -> dict[str, list[ActionRun]]:
    out: defaultdict[str, list[ActionRun]] = defaultdict(list)
    for r in session.exec(select(ActionRun).where(ActionRun.incident_id == incident_id)):
        out[r.action_id].append(r)
    return dict(out)
