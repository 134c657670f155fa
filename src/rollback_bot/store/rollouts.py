"""Queries about rollouts and the readings their gate compares, in one place."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select, update

from rollback_bot.metrics.compared import ComparedReading
from rollback_bot.rollout.gate import Point
from rollback_bot.store.models import Rollout, RolloutReading

ACTIVE = ("running", "held")


def active(session: Session, *, playbook: str) -> Rollout | None:
    """The playbook's rollout under way (running or held), if any."""
    stmt = select(Rollout).where(Rollout.playbook == playbook, col(Rollout.status).in_(ACTIVE))
    return session.exec(stmt).first()


def under_way(session: Session) -> list[Rollout]:
    """Every rollout running or held, of any playbook."""
    return list(session.exec(select(Rollout).where(col(Rollout.status).in_(ACTIVE)).order_by(col(Rollout.id))))


def latest(session: Session, *, playbook: str) -> Rollout | None:
    stmt = select(Rollout).where(Rollout.playbook == playbook).order_by(col(Rollout.id).desc())
    return session.exec(stmt.limit(1)).first()


def add_readings(session: Session, *, rollout_id: int, readings: Iterable[ComparedReading]) -> None:
    for r in readings:
        session.add(
            RolloutReading(
                rollout_id=rollout_id,
                signal=r.signal,
                version=r.version,
                segment=r.segment,
                at=r.at,
                value=r.value,
                status=r.status,
                detail=r.detail[:300],
            )
        )


def points_since(session: Session, *, rollout_id: int, since: datetime) -> list[Point]:
    """The usable readings of a rollout taken after a stage began (those of its first moment were read for
    the stage before), as the gate takes them."""
    stmt = select(RolloutReading).where(
        RolloutReading.rollout_id == rollout_id, col(RolloutReading.at) > since, RolloutReading.status == "ok"
    )
    return [
        Point(r.signal, r.version, r.segment, r.at, r.value)  # type: ignore[arg-type]
        for r in session.exec(stmt.order_by(col(RolloutReading.at)))
        if r.value is not None and math.isfinite(r.value)
    ]


def claim(session: Session, *, rollout: Rollout, **values: Any) -> bool:
    """Change the rollout only if it is still as `rollout` was read (stage, status, verdict): two people
    clicking at once, on any process, or the gate deciding while someone advances, change it once."""
    stmt = (
        update(Rollout)
        .where(
            col(Rollout.id) == rollout.id,
            col(Rollout.stage) == rollout.stage,
            col(Rollout.status) == rollout.status,
            col(Rollout.verdict) == rollout.verdict,
        )
        .values(**values)
    )
    if session.exec(stmt).rowcount != 1:
        return False
    for name, value in values.items():
        set_committed_value(rollout, name, value)
    return True


def looked(session: Session, *, rollout: Rollout, at: datetime) -> None:
    """The gate looked and its verdict stands (unless the stage changed meanwhile: then it looks again)."""
    session.exec(
        update(Rollout).where(col(Rollout.id) == rollout.id, col(Rollout.stage) == rollout.stage).values(looked_at=at)
    )
