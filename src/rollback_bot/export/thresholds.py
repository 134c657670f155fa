"""The post-mortem's Thresholds section, the learning loop: for each comparison in the playbook's triggers, the
threshold in force, the value at fault onset, the first breach and the peak over the incident; for triggers
that did not fire, how close they came; and one suggestion line the author can accept or strike (pure: the
readings are handed in)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from rollback_bot.playbook.conditions import Compare, Condition
from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.models import Playbook

Point = tuple[datetime, float]
RISING = (">", ">=")
FALLING = ("<", "<=")


def compares(cond: Condition | None) -> list[Compare]:
    """Every plain comparison in a condition (through all / any / at least), in order."""
    if cond is None:
        return []
    if isinstance(cond, Compare):
        return [cond]
    items = getattr(cond, "items", None)
    return [c for item in items or () for c in compares(item)]


def section(
    pb: Playbook,
    readings: Mapping[str, Sequence[Point]],
    fired: set[str],
    onset: datetime | None,
    incident_id: int,
) -> list[dict[str, Any]]:
    """One row per comparison of each trigger (KPI gates and jumps are in the timeline, not here). `onset`: the
    fault's, where known (a drill's); else nothing is said at it, and nothing is suggested from it."""
    rows: list[dict[str, Any]] = []
    for name, trigger in pb.triggers.items():
        for rule in compares(trigger.condition):
            points = [p for p in readings.get(rule.signal, ()) if p[1] == p[1]]  # NaN is no data
            rows.append(_row(name, rule, points, name in fired, onset, incident_id, trigger.for_.total_seconds()))
    return rows


def _row(
    trigger: str,
    rule: Compare,
    points: list[Point],
    fired: bool,
    onset: datetime | None,
    incident_id: int,
    for_s: float,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trigger": trigger,
        "rule": str(rule),
        "signal": rule.signal,
        "threshold": rule.threshold,
        "fired": fired,
        "at_onset": None,
        "first_breach": None,
        "peak": None,
        "closest": None,
        "suggestion": None,
    }
    if not points:
        row["suggestion"] = f"no readings of {rule.signal} kept for this incident: nothing to learn here"
        return row
    at_onset = next((p for p in points if p[0] >= onset), None) if onset is not None else None
    breach = next((p for p in points if rule.holds(p[1])), None)
    peak = _peak(rule, points)
    row["at_onset"] = _point(at_onset)
    row["first_breach"] = _point(breach)
    row["peak"] = _point(peak)
    again = f"check it first: rollback-bot backtest PLAYBOOK --incident {incident_id}"
    if fired:
        if onset is None:  # no moment before the breach to learn from
            row["suggestion"] = (
                f"{rule} fired; the fault's onset is not known (drills record it), so nothing to compare"
            )
        elif breach is not None and at_onset is not None and breach[0] > at_onset[0] and rule.op in RISING + FALLING:
            late = _duration((breach[0] - at_onset[0]).total_seconds())
            op = ">=" if rule.op in RISING else "<="
            earlier = [p[1] for p in points if onset is not None and p[0] < onset]
            already = any(v >= at_onset[1] if op == ">=" else v <= at_onset[1] for v in earlier)
            if already or at_onset[1] == (min if op == ">=" else max)(p[1] for p in points):
                row["suggestion"] = (
                    f"first breached {late} after the fault's onset, but {rule.signal} was already "
                    f"{_num(at_onset[1])} before it: no threshold on {rule.signal} alone fires sooner"
                )
            else:
                row["suggestion"] = (
                    f"{rule.signal} {op} {_num(at_onset[1])} would have fired at the fault's onset, {late} before "
                    f"the first breach of {rule}; {again} (false alarms)"
                )
        else:
            row["suggestion"] = f"{rule} was breached from the fault's onset: keep it"
        return row
    if peak is not None and rule.op in RISING + FALLING and rule.threshold:
        ratio = peak[1] / rule.threshold if rule.op in RISING else rule.threshold / peak[1] if peak[1] else 0.0
        row["closest"] = round(ratio, 4)
        if breach is not None:
            hold = f" for {_duration(for_s)}" if for_s else ""
            row["suggestion"] = f"breached at {breach[0]:%H:%M:%S} but not{hold} long enough to fire; {again}"
        elif ratio >= 0.8:
            row["suggestion"] = (
                f"came within {100 - ratio * 100:.0f}% of {rule} (peak {_num(peak[1])}); if this incident should "
                f"have fired it, {rule.signal} {rule.op} {_num(peak[1] * (0.95 if rule.op in RISING else 1.05))}; "
                f"{again}"
            )
        else:
            row["suggestion"] = f"stayed far from {rule} (peak {_num(peak[1])}, {ratio * 100:.0f}% of it)"
    return row


def _peak(rule: Compare, points: list[Point]) -> Point | None:
    if rule.op in RISING:
        return max(points, key=lambda p: p[1])
    if rule.op in FALLING:
        return min(points, key=lambda p: p[1])
    return None


def _point(p: Point | None) -> dict[str, Any] | None:
    return {"at": p[0].isoformat(), "value": p[1]} if p is not None else None


def _num(x: float) -> str:
    return f"{x:.4g}"


def _duration(seconds: float) -> str:
    return format_duration(timedelta(seconds=round(seconds))) if seconds >= 1 else "0s"
