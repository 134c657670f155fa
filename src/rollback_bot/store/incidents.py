"""Queries about incidents, in one place."""

from __future__ import annotations

from sqlmodel import Session, col, select

from rollback_bot.store.models import Incident


def open_incident(session: Session, *, playbook: str) -> Incident | None:
    """The playbook's open incident (at most one: the database enforces it)."""
    return session.exec(select(Incident).where(Incident.playbook == playbook, Incident.status == "open")).first()


def open_incidents(session: Session) -> list[Incident]:
    return list(session.exec(select(Incident).where(Incident.status == "open").order_by(col(Incident.id))))
