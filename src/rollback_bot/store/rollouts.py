"""Queries about rollouts and the readings their gate compares, in one place."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session, col, select

from rollback_bot.metrics.compared import ComparedReading
from rollback_bot.rollout.gate import Point
from rollback_bot.store.models import Rollout, RolloutReading

ACTIVE = ("running", "held")


def active(session: Session, *, playbook: str) -> Rollout | None:
    """The playbook's rollout under way (running or held), if any."""
    stmt = select(Rollout).where(Rollout.playbook == playbook, col(Rollout.status).in_(ACTIVE))
    return session.exec(stmt).first()


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
