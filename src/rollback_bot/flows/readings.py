"""Reading signals from their sources into the store, and back out as the latest values."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlmodel import Session

from rollback_bot.flows.deps import Deps
from rollback_bot.playbook.models import Playbook, SignalSpec
from rollback_bot.rules import step
from rollback_bot.rules.readings import Reading
from rollback_bot.rules.step import fresh, jump_windows, stale_after

__all__ = ["builtin_reading", "fresh", "history", "latest", "prune", "stale_after", "to_reading", "with_builtins"]
from rollback_bot.store import alerts as store_alerts
from rollback_bot.store import readings as store_readings
from rollback_bot.store.models import Incident, ReadingRow


def builtin_reading(name: str, spec: SignalSpec, incident: Incident | None, now: datetime) -> Reading:
    """Signals the bot knows itself: minutes to acknowledgement, minutes since the incident opened."""
    if incident is None:
        return step.builtin_reading(name, spec, None, None, now)
    return step.builtin_reading(name, spec, incident.opened_at, incident.acknowledged_at, now)


def prune(deps: Deps, keep: timedelta) -> int:
    """Delete readings older than `keep` (charts of older incidents lose their lines; the timeline stays), and
    the alerts Alertmanager has not sent for as long."""
    with deps.store.session() as s:
        deleted = store_readings.prune(s, older_than=deps.now() - keep)
        store_alerts.prune(s, older_than=deps.now() - keep)
        s.commit()
        return deleted


def with_builtins(
    pb: Playbook, readings: dict[str, Reading], incident: Incident | None, now: datetime
) -> dict[str, Reading]:
    """Builtin signals computed now from the incident, over whatever was stored for them."""
    out = dict(readings)
    for name, spec in pb.signals.items():
        if spec.builtin is not None:
            out[name] = builtin_reading(name, spec, incident, now)
    return out


def to_reading(row: ReadingRow) -> Reading:
    status = row.status if row.status in ("ok", "nodata", "error") else "error"
    return Reading(row.signal, row.at, row.value, status, row.detail)  # type: ignore[arg-type]


def latest(
    session: Session,
    pb: Playbook,
    now: datetime,
    poll_floor: timedelta = timedelta(0),
    signals: Iterable[str] | None = None,
) -> dict[str, Reading]:
    """The newest reading of each signal (default: all of the playbook's), stale ones as no data.

    `poll_floor` is the shortest interval the scheduler really polls at (a compressed clock has one)."""
    wanted = [n for n in (pb.signals if signals is None else signals) if n in pb.signals and not pb.signals[n].compared]
    if not wanted:
        return {}
    horizon = max(stale_after(pb.signals[n], poll_floor) for n in wanted)
    rows = store_readings.newest_since(session, playbook=pb.name, since=now - horizon)
    missing = [n for n in wanted if n not in rows]
    if missing:  # not read lately: look up the last reading of each, to say when it was
        rows |= store_readings.newest(session, playbook=pb.name, signals=missing)
    return fresh(pb, {n: to_reading(rows[n]) for n in wanted if n in rows}, now, poll_floor)


def history(session: Session, pb: Playbook, now: datetime) -> dict[str, list[Reading]]:
    """Readings inside the longest jump window of each signal a jump trigger reads."""
    windows = jump_windows(pb)
    return {
        sig: [to_reading(r) for r in store_readings.window(session, playbook=pb.name, signal=sig, since=now - span)]
        for sig, span in windows.items()
    }
