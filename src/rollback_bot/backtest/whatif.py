"""`rollback-bot backtest PLAYBOOK --incident N`: replay the readings stored around a past incident under the
playbook as it was then (its stored text) and under PLAYBOOK (as edited since), on the same code path as the
live bot, and say what would have changed: each trigger fired earlier or later and by how much, or not at
all; and the false alarms (incidents outside the incident's span) in the surrounding days under each."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any

from rollback_bot.backtest.replay import Replay, replay
from rollback_bot.backtest.report import _d, _t, _table
from rollback_bot.playbook.loader import parse_playbook
from rollback_bot.playbook.models import Playbook
from rollback_bot.rules.readings import Reading
from rollback_bot.store import readings as store_readings
from rollback_bot.store.database import Store
from rollback_bot.store.models import Incident

LEAD = timedelta(hours=1)  # a firing this long before the incident opened still counts as detecting it
LONGEST = timedelta(hours=24)  # an incident still open, or resolved late, is judged on its first day


class WhatIfError(Exception):
    pass


@dataclass(frozen=True)
class Change:
    trigger: str
    then_at: datetime | None  # first firing in the incident's span, under the playbook as it was
    now_at: datetime | None  # ... under the edited playbook
    what: str  # in words: "fires 2m earlier", "would not fire", ...


@dataclass
class WhatIf:
    incident_id: int
    trigger: str
    opened_at: datetime
    span: tuple[datetime, datetime]  # what counts as detecting this incident
    start: datetime
    end: datetime
    then: Replay
    now: Replay
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def false_alarms(self, result: Replay) -> list[datetime]:
        lo, hi = self.span
        return [i.opened_at for i in result.incidents if not lo <= i.opened_at <= hi]

    def opened(self, result: Replay) -> datetime | None:
        lo, hi = self.span
        return next((i.opened_at for i in result.incidents if lo <= i.opened_at <= hi), None)


def what_if(store: Store, incident_id: int, edited: Playbook, days: float) -> WhatIf:
    with store.session() as s:
        incident = s.get(Incident, incident_id)
        if incident is None:
            raise WhatIfError(f"no incident #{incident_id} in the database")
        if incident.playbook != edited.name:
            raise WhatIfError(f"incident #{incident_id} is of playbook {incident.playbook}, not {edited.name}")
        then_pb = parse_playbook(incident.playbook_text, incident.playbook_path).playbook
        opened = incident.opened_at
        closed = min(incident.resolved_at or opened + LONGEST, opened + LONGEST)
        around = timedelta(days=days)
        oldest, newest = store_readings.span(s, playbook=edited.name)
        if oldest is None or newest is None:
            raise WhatIfError(f"no readings of {edited.name} are stored (kept for READINGS_RETENTION)")
        start, end = max(opened - around, oldest), min(closed + around, newest)
        rows = store_readings.between(s, playbook=edited.name, start=start, end=end)
    series = {
        name: [Reading(r.signal, r.at, r.value, r.status, r.detail) for r in got]  # type: ignore[arg-type]
        for name, got in rows.items()
    }
    result = WhatIf(
        incident_id,
        incident.trigger,
        opened,
        (opened - LEAD, closed),
        start,
        end,
        replay(then_pb, series, start, end),
        replay(edited, series, start, end),
    )
    if start > opened - around:
        result.notes.append(f"readings are kept from {_t(oldest)} only: the replay starts there")
    missing = [n for n, spec in edited.signals.items() if spec.builtin is None and not spec.compared and n not in rows]
    if missing:
        result.notes.append(f"no stored readings for {', '.join(missing)} (replayed as no data)")
    for name in dict.fromkeys([*then_pb.triggers, *edited.triggers]):
        result.changes.append(_change(name, result, name in edited.triggers, name in then_pb.triggers))
    return result


def _first(result: Replay, trigger: str, span: tuple[datetime, datetime]) -> datetime | None:
    lo, hi = span
    return next((f.fired_at for f in result.firings if f.trigger == trigger and lo <= f.fired_at <= hi), None)


def _change(name: str, w: WhatIf, in_now: bool, in_then: bool) -> Change:
    then_at = _first(w.then, name, w.span) if in_then else None
    now_at = _first(w.now, name, w.span) if in_now else None
    if not in_now:
        what = "removed from the playbook"
    elif not in_then:
        what = f"new: fires at {_t(now_at)}" if now_at else "new: would not fire"
    elif then_at is None and now_at is None:
        what = "does not fire, then or now"
    elif now_at is None:
        what = "would not fire"
    elif then_at is None:
        what = "would fire (it did not)"
    elif now_at < then_at:
        what = f"fires {_d(then_at - now_at)} earlier"
    elif now_at > then_at:
        what = f"fires {_d(now_at - then_at)} later"
    else:
        what = "unchanged"
    return Change(name, then_at, now_at, what)


def as_dict(w: WhatIf) -> dict[str, Any]:
    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at else None

    return {
        "incident": w.incident_id,
        "trigger": w.trigger,
        "opened_at": iso(w.opened_at),
        "from": iso(w.start),
        "to": iso(w.end),
        "replayed_then": {"opened_at": iso(w.opened(w.then)), "false_alarms": [iso(a) for a in w.false_alarms(w.then)]},
        "replayed_now": {"opened_at": iso(w.opened(w.now)), "false_alarms": [iso(a) for a in w.false_alarms(w.now)]},
        "triggers": [
            {"trigger": c.trigger, "then": iso(c.then_at), "now": iso(c.now_at), "change": c.what} for c in w.changes
        ],
        "notes": w.notes,
    }


def write(fmt: str, w: WhatIf, fp: IO[str]) -> None:
    if fmt == "json":
        json.dump(as_dict(w), fp, indent=2)
        fp.write("\n")
        return
    opened_then, opened_now = w.opened(w.then), w.opened(w.now)
    fp.write(
        f"What if: incident #{w.incident_id} ({w.trigger}), opened {_t(w.opened_at)} UTC, replayed "
        f"{_t(w.start)} to {_t(w.end)} under the playbook as it was and as it is now\n\n"
    )
    fp.write(
        f"As it was: the replay opens it at {_t(opened_then)}"
        + (" (as it happened)\n" if opened_then == w.opened_at else f" (it opened at {_t(w.opened_at)})\n")
    )
    if opened_now is None:
        fp.write("As it is now: it would NOT have opened\n\n")
    else:
        delta = (opened_then or w.opened_at) - opened_now
        when = "earlier" if delta > timedelta(0) else "later" if delta < timedelta(0) else "at the same time"
        amount = f"{_d(abs(delta))} " if delta else ""
        fp.write(f"As it is now: it would open at {_t(opened_now)}, {amount}{when}\n\n")
    rows = [[c.trigger, _t(c.then_at), _t(c.now_at), c.what] for c in w.changes]
    fp.write(_table(["trigger", "fired then", "would fire now", "change"], rows) + "\n\n")
    then_fa, now_fa = w.false_alarms(w.then), w.false_alarms(w.now)
    fp.write(f"False alarms in the surrounding days: {len(then_fa)} as it was, {len(now_fa)} as it is now\n")
    for at in now_fa:
        fp.write(f"  now: an incident would open at {_t(at)}\n")
    for note in w.notes:
        fp.write(f"note: {note}\n")
