"""How a replay compares with known bad periods: per trigger, detection delay, false alarms and misses."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rollback_bot.backtest.inputs import KnownIncident
from rollback_bot.backtest.replay import Replay

ANY = "(any trigger: incidents)"


@dataclass
class Score:
    """A trigger's record against the known periods. A firing overlapping a period detects it (the delay is from
    the period's start to the firing, negative when it fired before); a firing overlapping none is a false
    alarm; a period no firing overlaps is a miss."""

    trigger: str
    delays: list[tuple[KnownIncident, timedelta]] = field(default_factory=list)
    misses: list[KnownIncident] = field(default_factory=list)
    false_alarms: list[datetime] = field(default_factory=list)

    @property
    def median_delay(self) -> timedelta | None:
        if not self.delays:
            return None
        return timedelta(seconds=statistics.median(d.total_seconds() for _, d in self.delays))


def _overlaps(start: datetime, end: datetime, k: KnownIncident) -> bool:
    return start <= k.end and end >= k.start


def _score(name: str, spans: list[tuple[datetime, datetime]], known: list[KnownIncident]) -> Score:
    score = Score(name)
    for k in known:
        hits = [s for s, e in spans if _overlaps(s, e, k)]
        if hits:
            score.delays.append((k, min(hits) - k.start))
        else:
            score.misses.append(k)
    score.false_alarms = [s for s, e in spans if not any(_overlaps(s, e, k) for k in known)]
    return score


def score(result: Replay, known: list[KnownIncident], triggers: list[str]) -> list[Score]:
    """One Score per trigger (in playbook order), then one for the incidents they opened."""
    out = []
    for name in triggers:
        spans = [(f.fired_at, f.cleared_at or result.end) for f in result.firings if f.trigger == name]
        out.append(_score(name, spans, known))
    incidents = [(i.opened_at, i.resolved_at or result.end) for i in result.incidents]
    out.append(_score(ANY, incidents, known))
    return out
