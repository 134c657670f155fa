"""A PNG per signal that fired: its readings over the incident, the threshold, and the ladder steps."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from rollback_bot.export.thresholds import compares
from rollback_bot.forked import in_fork
from rollback_bot.playbook.models import Playbook
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


def chart(
    session: Session,
    pb: Playbook,
    signal: str,
    opened_at: datetime,
    start: datetime,
    end: datetime,
    zone: ZoneInfo | None = None,
) -> bytes | None:
    """A PNG of the signal's readings from `start` to `end`, its hours in `zone` (the export's --tz)."""
    found = points(session, pb, signal, start, end)
    return draw(pb, signal, found, opened_at, start, end, zone) if found else None


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


def draw(
    pb: Playbook,
    signal: str,
    points: list[tuple[datetime, float]],
    opened_at: datetime,
    start: datetime,
    end: datetime,
    zone: ZoneInfo | None = None,
) -> bytes:
    """The PNG of `points` (at least one): no database needed, so it can be drawn in another process."""
    # imported here: matplotlib and numpy cost ~55 MB, and only an export draws charts
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2), dpi=100)  # not pyplot: its global state is unsafe across threads
    FigureCanvasAgg(fig)  # renders to PNG, never to a screen
    ax = fig.subplots()
    drawn = with_gaps(points)
    xs = mdates.date2num([p[0] for p in drawn])
    ax.plot(xs, [p[1] for p in drawn], color="#1f4e79", linewidth=1.4, label=signal)
    for text, value in thresholds(pb, signal):
        ax.axhline(value, color="#c0392b", linestyle="--", linewidth=1, label=f"threshold: {text}")
    for i, step in enumerate(pb.ladder):
        at = opened_at + step.start
        if start <= at <= end:
            x = mdates.date2num(at)
            ax.axvline(x, color="#7f8c8d", linewidth=0.8, linestyle=":")
            ax.annotate(
                f"{i + 1}",
                (x, 1.0),
                xycoords=("data", "axes fraction"),
                fontsize=8,
                color="#555",
                ha="left",
                va="top",
                xytext=(2, -2),
                textcoords="offset points",
            )
    ax.set_title(f"{signal} ({pb.signals[signal].unit or 'value'}); dotted lines: ladder steps", fontsize=10)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone or UTC))
    ax.set_xlabel(zone.key if zone else "UTC")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


Job = tuple[Playbook, str, list[tuple[datetime, float]], datetime, datetime, datetime, ZoneInfo | None]


def in_background(jobs: dict[str, Job]) -> Callable[[], dict[str, bytes]]:
    """Draw the charts in a forked process while the caller goes on writing (importing matplotlib and
    drawing take about a second); the returned function waits and gives the PNGs."""
    if not jobs:
        return dict
    return in_fork(lambda: {signal: draw(*job) for signal, job in jobs.items()})


def window(doc: dict[str, Any], now: datetime) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(doc["impact_window"]["start"]) - timedelta(minutes=30)
    end_text = doc["incident"]["resolved_at"]
    end = datetime.fromisoformat(end_text) if end_text else now
    return start, end + timedelta(minutes=10)
