"""Queries about incidents, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, func, select, update

from rollback_bot.store.models import Event, Incident


def open_incident(session: Session, *, playbook: str) -> Incident | None:
    """The playbook's open incident (at most one: the database enforces it)."""
    return session.exec(select(Incident).where(Incident.playbook == playbook, Incident.status == "open")).first()


def open_incidents(session: Session) -> list[Incident]:
    return list(session.exec(select(Incident).where(Incident.status == "open").order_by(col(Incident.id))))


def event_counts(session: Session, *, incident_id: int) -> dict[str, int]:
    """How many events of each kind an incident's timeline holds."""
    stmt = select(Event.kind, func.count()).where(Event.incident_id == incident_id).group_by(Event.kind)
    return {str(kind): int(n) for kind, n in session.exec(stmt).all()}


def claim_export(session: Session, *, incident_id: int, by: str, now: datetime, every: timedelta) -> bool:
    """Take the right to upload the incident's timeline now: at most one upload per `every` (the caller
    commits). An upload that failed gives the right back (release_export)."""
    done = session.exec(
        update(Incident)
        .where(
            col(Incident.id) == incident_id,
            col(Incident.exported_at).is_(None) | (col(Incident.exported_at) <= now - every),
        )
        .values(exported_at=now, exported_by=by, export_link=None)
    )
    return bool(done.rowcount)


def finish_export(session: Session, *, incident_id: int, link: str | None) -> None:
    """Where the upload went (None: it failed, and the next ask may upload again at once)."""
    values: dict[str, object] = {"export_link": link} if link else {"exported_at": None, "exported_by": None}
    session.exec(update(Incident).where(col(Incident.id) == incident_id).values(**values))


@dataclass
class PlaybookVersion:
    """A version of a playbook that incidents ran on: its text as it was, where it was, and which incidents."""

    version: str
    path: str
    text: str
    incidents: list[int] = field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None


def playbook_versions(session: Session, *, playbook: str) -> list[PlaybookVersion]:
    """Every version of `playbook` incidents opened on, oldest first (one query)."""
    stmt = (
        sa.select(
            col(Incident.id),
            col(Incident.playbook_version),
            col(Incident.playbook_path),
            col(Incident.playbook_text),
            col(Incident.opened_at),
        )
        .where(col(Incident.playbook) == playbook)
        .order_by(col(Incident.opened_at), col(Incident.id))
    )
    out: dict[str, PlaybookVersion] = {}
    for iid, version, path, text, opened in session.connection().execute(stmt):
        v = out.setdefault(version, PlaybookVersion(version, path, text))
        v.incidents.append(int(iid or 0))
        v.first = v.first or opened
        v.last = opened
    return list(out.values())
