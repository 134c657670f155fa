"""Pure trigger evaluation: readings + previous state + now -> decision + next state.

Three-valued logic: a condition is True (breached), False (healthy) or None (no data). No data never
fires and never counts as healthy: it neither resets a pending `for` timer nor completes one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from rollback_bot.playbook.conditions import AllOf, AnyOf, AtLeast, Compare, Condition, Jump
from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.models import TriggerSpec
from rollback_bot.rules.readings import Reading

Latest = Mapping[str, Reading]
History = Mapping[str, Sequence[Reading]]


@dataclass(frozen=True)
class Evidence:
    """One signal's part in a decision, as a message or timeline can show it."""

    signal: str
    value: float | None
    rule: str
    holds: bool | None
    at: datetime | None
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "signal": self.signal,
            "value": _json_num(self.value),
            "rule": self.rule,
            "breached": self.holds,
            "at": self.at.isoformat() if self.at else None,
            "note": self.note,
        }


def _json_num(v: float | None) -> float | str | None:
    if v is None or math.isfinite(v):
        return v
    return "+Inf" if v > 0 else "-Inf"


@dataclass(frozen=True)
class Verdict:
    holds: bool | None
    evidence: tuple[Evidence, ...]


def evaluate(cond: Condition, latest: Latest, history: History, now: datetime) -> Verdict:
    if isinstance(cond, Compare):
        r = latest.get(cond.signal)
        if r is None or not r.usable:
            note = "no reading yet" if r is None else f"no data: {r.detail or r.status}"
            return Verdict(None, (Evidence(cond.signal, None, str(cond), None, r.at if r else None, note),))
        assert r.value is not None
        held = cond.holds(r.value)
        return Verdict(held, (Evidence(cond.signal, r.value, str(cond), held, r.at),))
    if isinstance(cond, Jump):
        return _jump(cond, latest, history, now)
    parts = [evaluate(item, latest, history, now) for item in cond.items]
    evidence = tuple(e for p in parts for e in p.evidence)
    trues = sum(p.holds is True for p in parts)
    unknowns = sum(p.holds is None for p in parts)
    need = len(parts) if isinstance(cond, AllOf) else 1 if isinstance(cond, AnyOf) else cond.count
    assert isinstance(cond, AllOf | AnyOf | AtLeast)
    if trues >= need:
        return Verdict(True, evidence)
    if trues + unknowns >= need:
        return Verdict(None, evidence)
    return Verdict(False, evidence)


def _jump(cond: Jump, latest: Latest, history: History, now: datetime) -> Verdict:
    r = latest.get(cond.signal)
    if r is None or not r.usable:
        note = "no reading yet" if r is None else f"no data: {r.detail or r.status}"
        return Verdict(None, (Evidence(cond.signal, None, str(cond), None, r.at if r else None, note),))
    assert r.value is not None
    since = now - cond.within
    earlier = [h for h in history.get(cond.signal, ()) if h.usable and since <= h.at < r.at]
    if not earlier:
        note = f"no earlier reading within {format_duration(cond.within)} to compare with"
        return Verdict(None, (Evidence(cond.signal, r.value, str(cond), None, r.at, note),))
    base = min(earlier, key=lambda h: h.value if h.value is not None else math.inf)
    assert base.value is not None
    if base.value < 0 or math.isinf(base.value):
        note = f"baseline {base.value:g} cannot give a relative change"
        return Verdict(None, (Evidence(cond.signal, r.value, str(cond), None, r.at, note),))
    if base.value == 0:
        held = r.value > 0  # any rise from zero is an unbounded relative increase
        change = "from 0"
    else:
        rise = (r.value - base.value) / base.value * 100
        held = rise >= cond.percent
        change = f"{rise:+.0f}% vs {base.value:g} at {base.at:%H:%M:%S}"
    return Verdict(held, (Evidence(cond.signal, r.value, str(cond), held, r.at, change),))


@dataclass(frozen=True)
class KpiScore:
    score: float | None
    gate: Literal["go", "hold", "rollback"] | None
    evidence: tuple[Evidence, ...]


def kpi_score(trigger: TriggerSpec, latest: Latest) -> KpiScore:
    """Weighted KPI: sum of w_i * m_i, gated into go / hold / rollback. Any missing metric: no score."""
    assert trigger.kpi is not None and trigger.below is not None
    evidence = []
    total = 0.0
    missing = False
    for signal, weight in trigger.kpi.items():
        r = latest.get(signal)
        if r is None or not r.usable or r.value is None or math.isinf(r.value):
            missing = True
            note = "no reading yet" if r is None else f"no data: {r.detail or r.status}"
            evidence.append(Evidence(signal, None, f"weight {weight:g}", None, r.at if r else None, note))
            continue
        total += weight * r.value
        evidence.append(Evidence(signal, r.value, f"weight {weight:g}", None, r.at, f"{weight * r.value:+.4f}"))
    if missing:
        return KpiScore(None, None, tuple(evidence))
    if total < trigger.below:
        gate: Literal["go", "hold", "rollback"] = "rollback"
    elif trigger.hold_below is not None and total < trigger.hold_below:
        gate = "hold"
    else:
        gate = "go"
    return KpiScore(total, gate, tuple(evidence))


@dataclass(frozen=True)
class TriggerState:
    """What must survive between evaluations (and restarts) for one trigger."""

    pending_since: datetime | None = None
    firing: bool = False
    gate: str | None = None


Status = Literal["ok", "pending", "firing", "nodata", "hold"]


@dataclass(frozen=True)
class Decision:
    trigger: str
    status: Status
    fired: bool  # became firing in this evaluation: open or attach to an incident
    cleared: bool  # stopped firing in this evaluation
    held: bool  # a KPI gate entered 'hold' in this evaluation
    since: datetime | None
    severity: str
    rule: str
    evidence: tuple[Evidence, ...]
    score: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "trigger": self.trigger,
            "status": self.status,
            "severity": self.severity,
            "rule": self.rule,
            "since": self.since.isoformat() if self.since else None,
            "score": self.score,
            "evidence": [e.as_dict() for e in self.evidence],
        }


def step_trigger(
    name: str, trigger: TriggerSpec, state: TriggerState, latest: Latest, history: History, now: datetime
) -> tuple[Decision, TriggerState]:
    """Advance one trigger by one evaluation."""
    score: float | None = None
    gate: str | None = None
    if trigger.kpi is not None:
        kpi = kpi_score(trigger, latest)
        score, gate, evidence = kpi.score, kpi.gate, kpi.evidence
        holds: bool | None = None if gate is None else gate == "rollback"
    else:
        cond = trigger.condition
        assert cond is not None
        verdict = evaluate(cond, latest, history, now)
        holds, evidence = verdict.holds, verdict.evidence

    def decide(status: Status, new: TriggerState, fired: bool = False) -> tuple[Decision, TriggerState]:
        held = gate == "hold" and state.gate != "hold"
        cleared = state.firing and not new.firing
        decision = Decision(
            name,
            status,
            fired,
            cleared,
            held,
            new.pending_since,
            trigger.severity,
            trigger.describe(),
            evidence,
            score,
        )
        return decision, new

    if holds is None:
        return decide("nodata", replace(state, gate=state.gate))
    if not holds:
        new = TriggerState(None, False, gate)
        return decide("hold" if gate == "hold" else "ok", new)
    since = state.pending_since or now
    if now - since >= trigger.for_:
        return decide("firing", TriggerState(since, True, gate), fired=not state.firing)
    return decide("pending", TriggerState(since, False, gate))
