"""Queries about the alerts Alertmanager sent, in one place: store a delivery, read back what signals match."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, delete, select

from rollback_bot.metrics.alertmanager import Alert, safe_text
from rollback_bot.store.database import insert_for
from rollback_bot.store.models import AlertRow


def store(session: Session, alerts: Sequence[Alert]) -> int:
    """Keep each alert's latest state; how many rows changed. A delivery never moves an alert back: an older
    one arriving late (a retry overtaken by a newer one) or a replay changes nothing. Newer means a later
    startsAt (the alert fired again), or the same one going from firing to resolved (resolved is final)."""
    if not alerts:
        return 0
    insert = insert_for(session)
    table = AlertRow.__table__  # type: ignore[attr-defined]
    stmt = insert(table).values(
        [
            {
                "fingerprint": a.fingerprint,
                "alertname": a.alertname,
                "status": a.status,
                "starts_at": a.starts_at,
                "ends_at": a.ends_at,
                "received_at": a.received_at,
                "labels": dict(a.labels),
                "annotations": dict(a.annotations),
                "generator_url": a.generator_url,
                "receiver": a.receiver,
            }
            for a in alerts
        ]
    )
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["fingerprint"],
        set_={
            c: getattr(new, c)
            for c in (
                "status",
                "starts_at",
                "ends_at",
                "received_at",
                "labels",
                "annotations",
                "generator_url",
                "receiver",
                "alertname",
            )
        },
        where=or_(
            new.starts_at > table.c.starts_at,
            and_(new.starts_at == table.c.starts_at, or_(table.c.status == "firing", new.status == "resolved")),
        ),
    )
    return int(session.exec(stmt).rowcount or 0)


def to_alert(row: AlertRow) -> Alert:
    return Alert(
        row.fingerprint,
        row.status,
        {safe_text(str(k)): safe_text(str(v)) for k, v in row.labels.items()},
        row.starts_at,
        row.ends_at,
        row.received_at,
        {safe_text(str(k)): safe_text(str(v)) for k, v in row.annotations.items()},
        row.generator_url,
        row.receiver,
    )


def named(session: Session, *, alertnames: Iterable[str] | None) -> list[Alert]:
    """The stored alerts with one of these alertnames (None: every alert; a signal matching no alertname)."""
    stmt = select(AlertRow)
    if alertnames is not None:
        stmt = stmt.where(col(AlertRow.alertname).in_(sorted(set(alertnames))))
    return [to_alert(row) for row in session.exec(stmt)]


def last_received(session: Session) -> datetime | None:
    """When the newest delivery was taken (None before any): one look at the table, for the leader's poll."""
    return session.exec(select(func.max(col(AlertRow.received_at)))).one()


def prune(session: Session, *, older_than: datetime) -> int:
    """Forget alerts not sent since `older_than` (a firing one is sent again every repeat_interval)."""
    deleted = session.exec(delete(AlertRow).where(col(AlertRow.received_at) < older_than))
    return int(deleted.rowcount or 0)
