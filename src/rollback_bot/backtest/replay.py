"""Replay recorded readings through the live evaluation (`rules.step`) on a simulated clock. Pure: no I/O.

The simulated clock ticks as the live scheduler does: one poll job per poll group (`rules.polling`), all
starting at `start`, each every `every`; at each tick the group's signals take their latest recorded reading
(at or before the tick) and the whole playbook is evaluated, as `flows.poll` does. When several groups tick at
the same instant each evaluates in turn, shortest interval first (live, two jobs run one after the other).

A reading older than its signal's staleness limit is no data, as live (`rules.step.fresh`); a signal without a
reading is no data. Incidents: a trigger firing while none is open opens one; others firing join it. Live, a
person resolves an incident; here it counts as resolved at the first evaluation at which no trigger fires.
Nobody acknowledges a simulated incident, so `ack_minutes` counts from its opening.
"""

from __future__ import annotations

import gc
import heapq
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter

from rollback_bot.backtest.rollout import Gate
from rollback_bot.playbook.models import Playbook
from rollback_bot.rules.evaluate import Decision, TriggerState
from rollback_bot.rules.polling import PollGroup, poll_groups
from rollback_bot.rules.readings import Reading
from rollback_bot.rules.step import Memo, builtin_reading, fresh, jump_windows, step_triggers

SEVERITY_RANK = {"minor": 1, "major": 2, "critical": 3}


@dataclass
class Firing:
    """One stretch of a trigger firing: from the evaluation that fired it to the one that cleared it."""

    trigger: str
    severity: str
    rule: str
    fired_at: datetime
    pending_since: datetime | None
    decision: Decision  # as it fired: evidence and note
    cleared_at: datetime | None = None  # None: still firing at the end of the replay

    def lasted(self, end: datetime) -> timedelta:
        return (self.cleared_at or end) - self.fired_at


@dataclass
class SimIncident:
    opened_at: datetime
    trigger: str
    severity: str
    triggers: list[str]
    resolved_at: datetime | None = None

    def lasted(self, end: datetime) -> timedelta:
        return (self.resolved_at or end) - self.opened_at


@dataclass
class Replay:
    playbook: str
    start: datetime
    end: datetime
    evaluations: int = 0
    readings: int = 0
    firings: list[Firing] = field(default_factory=list)
    incidents: list[SimIncident] = field(default_factory=list)
    holds: list[tuple[str, datetime]] = field(default_factory=list)  # a KPI gate entering HOLD
    decisions: list[tuple[datetime, Decision]] = field(default_factory=list)  # only with keep_decisions
    gate: Gate | None = None  # the rollout gate's verdict per window (backtest/rollout.py), for a rollout


def ticks(groups: Sequence[PollGroup], start: datetime, end: datetime) -> Iterator[tuple[datetime, int]]:
    """(time, index of the group polled) for every poll of every group from start to end, in the order live runs
    them. Lazily: a month of polls made up front is a few hundred thousand objects for the evaluations to work
    around. An index, not the group's signals: the replay keeps what it needs per group in lists."""
    span = end - start

    def polls(index: int, group: PollGroup) -> Iterator[tuple[timedelta, int]]:
        for k in range(int(span / group.interval) + 1):
            yield k * group.interval, index

    for offset, index in heapq.merge(*(polls(i, g) for i, g in enumerate(groups))):
        yield start + offset, index


_at = attrgetter("at")


class _Series:
    """One signal's readings in time order, with a cursor at the latest one read so far."""

    __slots__ = ("at", "next", "readings")

    def __init__(self, readings: Sequence[Reading]) -> None:
        self.readings = sorted(readings, key=_at)
        self.at = list(map(_at, self.readings))
        self.next = 0  # index of the first reading not yet read

    def read(self, now: datetime) -> Reading | None:
        n, at = len(self.at), self.at
        i = self.next
        while i < n and at[i] <= now:
            i += 1
        self.next = i
        return self.readings[i - 1] if i else None

    def window(self, since: datetime) -> list[Reading]:
        return self.readings[bisect_left(self.at, since, 0, self.next) : self.next]


def replay(
    pb: Playbook,
    series: Mapping[str, Sequence[Reading]],
    start: datetime,
    end: datetime,
    *,
    keep_decisions: bool = False,
) -> Replay:
    """What the live bot would have decided, poll by poll, had it read `series` from `start` to `end`."""
    # A month of readings is a million live objects: the cyclic collector would walk them all again and again
    # while the replay allocates (and frees, by reference counting: it makes no cycles) its decisions.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _replay(pb, series, start, end, keep_decisions)
    finally:
        if collecting:
            gc.enable()


def _replay(
    pb: Playbook, series: Mapping[str, Sequence[Reading]], start: datetime, end: datetime, keep_decisions: bool
) -> Replay:
    out = Replay(pb.name, start, end)
    streams = {name: _Series(series.get(name, ())) for name in pb.signals}
    windows = [(sig, streams[sig], span) for sig, span in jump_windows(pb).items()]
    groups = poll_groups(pb)
    # Only what a trigger reads can change a decision: the other signals are not read at every tick (nor checked
    # for staleness), only counted at the end.
    used = {sig for trig in pb.triggers.values() for sig in trig.signals}
    wanted = [[(name, streams[name]) for name in g.signals if name in used] for g in groups]  # per poll group
    last_poll: list[datetime | None] = [None] * len(groups)
    builtins = [(name, spec) for name, spec in pb.signals.items() if spec.builtin is not None and name in used]
    polled: dict[str, Reading] = {}
    states: dict[str, TriggerState] = {}
    open_firings: dict[str, Firing] = {}
    incident: SimIncident | None = None
    memo = Memo(pb)
    for now, group in ticks(groups, start, end):
        last_poll[group] = now
        for name, stream in wanted[group]:
            r = stream.read(now)
            if r is None:
                polled.pop(name, None)
            else:
                polled[name] = r
        current = fresh(pb, polled, now, timedelta(0))
        opened = incident.opened_at if incident else None
        for name, spec in builtins:
            current[name] = builtin_reading(name, spec, opened, None, now)
        history = {sig: stream.window(now - span) for sig, stream, span in windows}
        out.evaluations += 1
        for decision, new in step_triggers(pb, states, current, history, now, memo):
            states[decision.trigger] = new
            if keep_decisions:
                out.decisions.append((now, decision))
            if decision.fired:
                firing = Firing(decision.trigger, decision.severity, decision.rule, now, decision.since, decision)
                open_firings[decision.trigger] = firing
                out.firings.append(firing)
                if incident is None:
                    incident = SimIncident(now, decision.trigger, decision.severity, [decision.trigger])
                    out.incidents.append(incident)
                else:
                    if decision.trigger not in incident.triggers:
                        incident.triggers.append(decision.trigger)
                    if SEVERITY_RANK[decision.severity] > SEVERITY_RANK[incident.severity]:
                        incident.severity = decision.severity
            elif decision.cleared:
                done = open_firings.pop(decision.trigger, None)
                if done is not None:
                    done.cleared_at = now
            if decision.held:
                out.holds.append((decision.trigger, now))
        if incident is not None and not any(s.firing for s in states.values()):
            incident.resolved_at = now
            incident = None
    for g, at in zip(groups, last_poll, strict=True):
        if at is not None:
            for name in g.signals:
                streams[name].read(at)
    out.readings = sum(s.next for s in streams.values())
    return out
