"""The charts of an export: a PNG per signal that fired (its readings over the incident, the thresholds, the ladder
steps), gathered from the database here and drawn by plotting.py."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from rollback_bot.export.thresholds import compares
from rollback_bot.playbook.models import Playbook
from rollback_bot.plotting import Plot
from rollback_bot.store.models import ReadingRow


def thresholds(pb: Playbook, signal: str) -> list[tuple[str, float]]:
    return [
        (str(c), c.threshold)
        for trigger in pb.triggers.values()
        for c in compares(trigger.condition)
        if c.signal == signal
    ]


def fired_signals(pb: Playbook, fired: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for f in fired:
        trigger = pb.triggers.get(str(f.get("trigger")))
        if trigger is None:
            continue
        names += [n for n in trigger.signals if n not in names]
    return names


def with_gaps(points: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    """The points with a NaN in each gap (longer than three times the usual spacing between readings, and
    than a minute), so the line breaks there instead of drawing across a time with no data."""
    if len(points) < 3:
        return points
    steps = sorted((b[0] - a[0]).total_seconds() for a, b in pairwise(points))
    limit = max(3 * steps[len(steps) // 2], 60.0)
    out = [points[0]]
    for before, point in pairwise(points):
        if (point[0] - before[0]).total_seconds() > limit:
            out.append((before[0] + (point[0] - before[0]) / 2, math.nan))
        out.append(point)
    return out


def points(session: Session, pb: Playbook, signal: str, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    """The signal's readings with a value from `start` to `end`, oldest first."""
    rows = session.exec(
        select(ReadingRow.at, ReadingRow.value)
        .where(
            ReadingRow.playbook == pb.name,
            ReadingRow.signal == signal,
            col(ReadingRow.at) >= start,
            col(ReadingRow.at) <= end,
        )
        .order_by(col(ReadingRow.at))
    ).all()
    return [(at, v) for at, v in rows if v is not None]


def plot(
    pb: Playbook,
    signal: str,
    points: list[tuple[datetime, float]],
    opened_at: datetime,
    start: datetime,
    end: datetime,
    zone: ZoneInfo | None = None,
) -> Plot:
    """What the chart of `points` (at least one) shows: the readings (broken at gaps), the signal's
    thresholds in the playbook's triggers, and the ladder's steps within the window."""
    steps = [(i + 1, opened_at + step.start) for i, step in enumerate(pb.ladder)]
    return Plot(
        signal=signal,
        unit=pb.signals[signal].unit,
        points=with_gaps(points),
        thresholds=thresholds(pb, signal),
        steps=[(n, at) for n, at in steps if start <= at <= end],
        start=start,
        end=end,
        zone=zone,
        label=pb.signals[signal].label or "",
    )


def window(doc: dict[str, Any], now: datetime) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(doc["impact_window"]["start"]) - timedelta(minutes=30)
    end_text = doc["incident"]["resolved_at"]
    end = datetime.fromisoformat(end_text) if end_text else now
    return start, end + timedelta(minutes=10)
