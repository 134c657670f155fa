"""One evaluation of a whole playbook, as the live poll and the backtest both run it. Pure: no I/O.

`fresh` says which of the latest readings are still current, `jump_windows` how much history a jump needs,
`builtin_reading` what the bot's own signals read, and `step_triggers` advances every trigger once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from rollback_bot.playbook.conditions import longest_jump_window, signals_in
from rollback_bot.playbook.models import Playbook, SignalSpec, TriggerSpec
from rollback_bot.rules.evaluate import Decision, History, Latest, TriggerState, step_trigger
from rollback_bot.rules.readings import Reading


def stale_after(spec: SignalSpec, poll_floor: timedelta) -> timedelta:
    """A reading older than this counts as no data: two poll intervals (as really polled) plus the timeout."""
    return 2 * max(spec.every, poll_floor) + spec.timeout


def fresh(pb: Playbook, readings: Mapping[str, Reading], now: datetime, poll_floor: timedelta) -> dict[str, Reading]:
    """Readings too old to use become no data, saying when the signal was last read."""
    out = dict(readings)
    signals = pb.signals
    for name, r in readings.items():
        spec = signals.get(name)
        # within one interval a reading is never stale: the common case skips computing the limit
        if spec is None:
            continue
        age = now - r.at
        if age > spec.every and age > stale_after(spec, poll_floor):
            out[name] = Reading.stale(name, r.at, f"last read {r.at:%H:%M:%S}")
    return out


def jump_windows(pb: Playbook) -> dict[str, timedelta]:
    """For each signal a jump trigger reads: the longest window it looks back over."""
    windows: dict[str, timedelta] = {}
    for trig in pb.triggers.values():
        cond = trig.condition
        if cond is None:
            continue
        span = longest_jump_window(cond)
        if span:
            for sig in signals_in(cond):
                windows[sig] = max(windows.get(sig, timedelta(0)), span)
    return windows


def builtin_reading(
    name: str, spec: SignalSpec, opened_at: datetime | None, acknowledged_at: datetime | None, now: datetime
) -> Reading:
    """Signals the bot knows itself: minutes to acknowledgement, minutes since the incident opened."""
    if opened_at is None:
        return Reading.nodata(name, now, "no open incident")
    if spec.builtin == "ack_minutes":
        end = acknowledged_at or now
        return Reading.of(name, now, (end - opened_at).total_seconds() / 60)
    return Reading.of(name, now, (now - opened_at).total_seconds() / 60)


class Memo:
    """Lets `step_triggers` skip a trigger whose evaluation cannot change: for a replay, where a signal keeps one
    reading across many evaluations. Sound because `step_trigger` is pure and, for a trigger reading no history
    (no jump), a healthy evaluation that changed nothing (status ok, state unchanged, nothing fired, cleared,
    held, blinded or sighted) does not read `now`: given the same state and the same readings of its signals,
    the next evaluation returns the same decision and state. A trigger that reads history also reads `now` (its
    window ends there), so for it the same instant and the same history of its signals must match too: it is
    skipped only when several poll groups evaluate at one instant and none of them read its signals."""

    def __init__(self, pb: Playbook) -> None:
        # per trigger: the signals it reads, and whether it also reads their history and `now`
        self.reads = {name: (tuple(trig.signals), _reads_history(trig)) for name, trig in pb.triggers.items()}
        self.steady: dict[str, tuple[tuple[object, ...], TriggerState, Decision]] = {}


def _reads_history(trig: TriggerSpec) -> bool:
    return any(longest_jump_window(c) for c in (trig.condition, trig.fail_fast) if c is not None)


def step_triggers(
    pb: Playbook,
    states: Mapping[str, TriggerState],
    latest: Latest,
    history: History,
    now: datetime,
    memo: Memo | None = None,
) -> list[tuple[Decision, TriggerState]]:
    """Every trigger of the playbook advanced by one evaluation, in playbook order (a missing state is new)."""
    blank = TriggerState()
    if memo is None:
        return [
            step_trigger(name, trig, states.get(name, blank), latest, history, now)
            for name, trig in pb.triggers.items()
        ]
    out = []
    steady, reads = memo.steady, memo.reads
    for name, trig in pb.triggers.items():
        state = states.get(name, blank)
        signals, timed = reads[name]
        # all the evaluation reads besides the state (inline: it is hot)
        inputs: tuple[object, ...] = tuple(map(latest.get, signals))
        if timed:
            inputs = (*inputs, now, *map(history.get, signals))
        known = steady.get(name)
        if known is not None and (known[1] is state or known[1] == state) and known[0] == inputs:
            out.append((known[2], state))
            continue
        decision, new = step_trigger(name, trig, state, latest, history, now)
        out.append((decision, new))
        quiet = not (decision.fired or decision.cleared or decision.held or decision.blind or decision.sighted)
        if decision.status == "ok" and quiet and (new is state or new == state):  # `_evolve` keeps an unchanged one
            steady[name] = (inputs, new, decision)
        else:
            steady.pop(name, None)
    return out
