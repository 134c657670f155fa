"""The drill's timing report: each step's target against when it was entered, and the response chain
fault -> detection -> acknowledgement -> approval -> rollback executed -> metrics recovered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.models import Playbook


@dataclass
class Timings:
    """What the drill observed, in clock time. None: it never happened."""

    fault_at: datetime | None = None
    opened_at: datetime | None = None
    acked_at: datetime | None = None
    approved_at: datetime | None = None  # the rollback action's approvals complete
    executed_at: datetime | None = None  # its last stage succeeded
    recovered_at: datetime | None = None
    resolved_at: datetime | None = None
    steps: dict[int, datetime] = field(default_factory=dict)
    rollback_action: str | None = None
    real_seconds: float = 0.0


@dataclass(frozen=True)
class Line:
    what: str
    target: str
    actual: str
    ok: bool


def _d(delta: timedelta | None) -> str:
    return "never" if delta is None else format_duration(timedelta(seconds=round(delta.total_seconds())))


def _between(a: datetime | None, b: datetime | None) -> timedelta | None:
    return None if a is None or b is None else b - a


def evaluate(pb: Playbook, t: Timings) -> list[Line]:
    lines = []
    for i, step in enumerate(pb.ladder):
        entered = t.steps.get(i)
        late = None if entered is None or t.opened_at is None else entered - (t.opened_at + step.start)
        ok = late is not None and late <= pb.drill.step_tolerance
        actual = "never" if late is None else f"+{_d(entered - t.opened_at)} (late by {_d(late)})"  # type: ignore[operator]
        lines.append(Line(f"step {i + 1}: {step.name}", f"+{step.window_text()}", actual, ok))

    def chain(what: str, start: datetime | None, end: datetime | None, limit: timedelta | None) -> None:
        took = _between(start, end)
        ok = took is not None and (limit is None or took <= limit)
        lines.append(Line(what, f"<= {_d(limit)}" if limit else "-", _d(took), ok))

    chain("fault -> detection", t.fault_at, t.opened_at, pb.drill.detect_within)
    chain("detection -> acknowledged", t.opened_at, t.acked_at, pb.acknowledge.within)
    if t.rollback_action:
        index, action = pb.action(t.rollback_action)
        step = pb.ladder[index]
        step_start = t.opened_at + step.start if t.opened_at else None
        chain(
            f"step {index + 1} start -> '{action.label}' approved", step_start, t.approved_at, pb.drill.approve_within
        )
        chain("detection -> rollback executed", t.opened_at, t.executed_at, step.end)
        chain("rollback executed -> metrics recovered", t.executed_at, t.recovered_at, pb.drill.recover_within)
    chain("fault -> metrics recovered", t.fault_at, t.recovered_at, None)
    return lines


def render(pb: Playbook, t: Timings, speed: float, notes: Sequence[str] = ()) -> tuple[list[str], bool]:
    """The report's lines, and whether every target was met. `notes`: what made the drill's times read late
    (its polls further apart than the playbook's), said under the table."""
    lines = evaluate(pb, t)
    out = ["", f"Drill report: {pb.name} ({pb.service}), clock x{speed:g}, {t.real_seconds:.1f} s real time", ""]
    width = max(len(line.what) for line in lines) + 2
    out.append(f"  {'':<{width}}{'target':<20}{'actual':<32}result")
    for line in lines:
        out.append(f"  {line.what:<{width}}{line.target:<20}{line.actual:<32}{'ok' if line.ok else 'MISSED'}")
    missed = [line for line in lines if not line.ok]
    out.append("")
    out.extend(f"Note: {note}." for note in notes)
    out.append(
        "All targets met." if not missed else f"{len(missed)} target(s) missed: " + "; ".join(m.what for m in missed)
    )
    return out, not missed
