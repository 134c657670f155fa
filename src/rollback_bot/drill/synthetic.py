"""A sandboxed model for any playbook, derived from its own thresholds: a healthy value for every signal it
reads (no trigger holds, every watch list holds), and a faulty value for the signals of one trigger (it holds),
blended by the share of traffic the fault still reaches. Pure: no I/O.

What cannot be derived is said, never guessed: a trigger whose conditions contradict the watch lists, a KPI
that cannot score below its gate, a JSON path the sandbox cannot build."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from rollback_bot.playbook.conditions import AllOf, AnyOf, AtLeast, Compare, Condition, Jump
from rollback_bot.playbook.models import Playbook, TriggerSpec

# the healthy side of a breach: a trigger's `x > 5` is healthy at `x <= 5`
NOT = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}


class CannotSimulate(Exception):
    pass


@dataclass
class _Range:
    low: float = -math.inf
    high: float = math.inf
    exact: float | None = None

    def keep(self, op: str, x: float) -> None:
        if op in (">", ">="):
            self.low = max(self.low, x)
        elif op in ("<", "<="):
            self.high = min(self.high, x)
        elif op == "==":
            self.exact = x

    def pick(self) -> float:
        if self.exact is not None:
            return self.exact
        if math.isfinite(self.low) and math.isfinite(self.high):
            return (self.low + self.high) / 2
        if math.isfinite(self.high):
            return self.high / 2 if self.high > 0 else self.high - 1
        if math.isfinite(self.low):
            if 0 < self.low < 1:  # a ratio, most likely: between it and 1
                return (self.low + 1) / 2
            return self.low * 1.1 if self.low > 0 else self.low + 1
        return 1.0


@dataclass(frozen=True)
class Synthetic:
    healthy: dict[str, float]
    faulty: dict[str, float]  # the faulted trigger's signals, at full fault
    target: str  # the trigger the fault makes hold
    notes: list[str] = field(default_factory=list)  # what the drill should know (said when it starts)

    def value(self, signal: str, share: float) -> float | None:
        """The signal's value with `share` (0..1) of the traffic still on the faulty release."""
        healthy = self.healthy.get(signal)
        if healthy is None:
            return None
        faulty = self.faulty.get(signal, healthy)
        return healthy + share * (faulty - healthy)


def read_signals(pb: Playbook) -> list[str]:
    """The signals the sandbox serves: read from a source (not built in, not a rollout's compared ones)."""
    return [
        n
        for n, s in pb.signals.items()
        if s.builtin is None and s.alertmanager is None and not s.compared and not s.segments
    ]


def derive(pb: Playbook, target: str | None = None) -> Synthetic:
    """The model for `pb`; the fault makes `target` hold (default: the first critical trigger it can make hold,
    else the first). CannotSimulate says why no trigger can be made to hold."""
    ranges = {name: _Range() for name in read_signals(pb)}
    for trig in pb.triggers.values():  # healthy: no comparison of any trigger holds
        for cmp in _compares(trig.condition) if trig.condition is not None else ():
            if cmp.signal in ranges:
                ranges[cmp.signal].keep(NOT[cmp.op], cmp.threshold)
    for step in pb.ladder:  # healthy: every watch list holds
        for cmp in step.watch:
            if cmp.signal in ranges:
                ranges[cmp.signal].keep(cmp.op, cmp.threshold)
    healthy = {name: r.pick() for name, r in ranges.items()}
    notes = [
        f"trigger '{name}' holds on healthy values (its thresholds contradict the watch lists); it fires at once"
        for name, trig in pb.triggers.items()
        if _holds(trig, healthy, healthy)
    ]
    unmet = {
        sig: rule
        for step in pb.ladder
        for cmp in step.watch
        if (sig := cmp.signal) in healthy and not cmp.holds(healthy[sig]) and (rule := str(cmp))
    }
    notes += [
        f"no value of {sig} is healthy everywhere (e.g. '{rule}' fails at {healthy[sig]:g})"
        for sig, rule in unmet.items()
    ]
    pushed = [n for n, spec in pb.signals.items() if spec.alertmanager is not None]
    if pushed:
        notes.append(f"{', '.join(pushed)} come from Alertmanager, which a drill does not feed: no data throughout")
    candidates = [target] if target else sorted(pb.triggers, key=lambda n: pb.triggers[n].severity != "critical")
    problems = []
    for name in candidates:
        if name not in pb.triggers:
            raise CannotSimulate(f"no trigger '{name}' in {pb.name}; its triggers: {', '.join(pb.triggers)}")
        trig = pb.triggers[name]
        missing = [s for s in trig.signals if s not in healthy and s in pb.signals]
        if missing:
            problems.append(
                f"'{name}' reads {', '.join(missing)}, which the sandbox cannot serve (built in or compared)"
            )
            continue
        faulty = _breach(trig, healthy)
        if faulty is None or not _holds(trig, {**healthy, **faulty}, healthy):
            problems.append(f"'{name}' cannot be made to hold by one fault")
            continue
        return Synthetic(healthy, faulty, name, notes)
    raise CannotSimulate("the sandbox cannot make any trigger fire: " + "; ".join(problems))


def _compares(cond: Condition | None) -> Iterator[Compare]:
    if isinstance(cond, Compare):
        yield cond
    elif isinstance(cond, AllOf | AnyOf | AtLeast):
        for item in cond.items:
            yield from _compares(item)


def _breach(trig: TriggerSpec, healthy: Mapping[str, float]) -> dict[str, float] | None:
    if trig.kpi is not None:
        assert trig.below is not None
        faulty = {s: (0.0 if w > 0 else abs(healthy.get(s, 1.0)) * 3 + 1) for s, w in trig.kpi.items()}
        return faulty if _score(trig, {**healthy, **faulty}) < trig.below else None
    out: dict[str, float] = {}
    return out if _make_hold(trig.condition, healthy, out) else None


def _make_hold(cond: Condition | None, healthy: Mapping[str, float], out: dict[str, float]) -> bool:
    if isinstance(cond, Compare):
        x = cond.threshold
        if cond.op in (">", ">="):
            out[cond.signal] = 2 * x if x > 0 else x + 1
        elif cond.op in ("<", "<="):
            out[cond.signal] = x / 2 if x > 0 else x - 1
        elif cond.op == "==":
            out[cond.signal] = x
        else:
            out[cond.signal] = x + 1
        return True
    if isinstance(cond, Jump):
        base = healthy.get(cond.signal, 1.0)
        rise = max(abs(base) * cond.percent / 100 * 2, 2 * (cond.min_rise or 0), 1.0 if base == 0 else 0.0)
        out[cond.signal] = base + rise
        return True
    if isinstance(cond, AllOf):
        return all(_make_hold(item, healthy, out) for item in cond.items)
    if isinstance(cond, AnyOf):
        return _make_hold(cond.items[0], healthy, out) if cond.items else False
    if isinstance(cond, AtLeast):
        return all(_make_hold(item, healthy, out) for item in cond.items[: cond.count])
    return False


def _holds(trig: TriggerSpec, values: Mapping[str, float], before: Mapping[str, float]) -> bool:
    """Whether the trigger holds on these values (a jump: from the steady values `before`)."""
    if trig.kpi is not None:
        assert trig.below is not None
        return _score(trig, values) < trig.below
    return _cond_holds(trig.condition, values, before)


def _cond_holds(cond: Condition | None, values: Mapping[str, float], before: Mapping[str, float]) -> bool:
    if isinstance(cond, Compare):
        return cond.signal in values and cond.holds(values[cond.signal])
    if isinstance(cond, Jump):
        if cond.signal not in values or cond.signal not in before:
            return False
        base, now = before[cond.signal], values[cond.signal]
        return now > base and now - base >= max(abs(base) * cond.percent / 100, cond.min_rise or 0.0)
    if isinstance(cond, AllOf):
        return all(_cond_holds(i, values, before) for i in cond.items)
    if isinstance(cond, AnyOf):
        return any(_cond_holds(i, values, before) for i in cond.items)
    if isinstance(cond, AtLeast):
        return sum(_cond_holds(i, values, before) for i in cond.items) >= cond.count
    return False


def _score(trig: TriggerSpec, values: Mapping[str, float]) -> float:
    return sum(w * values.get(s, 1.0) for s, w in (trig.kpi or {}).items())
