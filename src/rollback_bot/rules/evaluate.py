"""Pure trigger evaluation: readings + previous state + now -> decision + next state.

Three-valued logic: a condition is True (breached), False (healthy) or None (no data). No data never
fires and never counts as healthy: it neither resets a pending `for` timer nor completes one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NamedTuple, TypeVar

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


_T = TypeVar("_T")


_setattr = object.__setattr__


def _frozen(cls: type[_T], values: dict[str, object]) -> _T:
    """`cls(**values)` for a frozen dataclass, every field given by name, without the generated `__init__`'s
    `object.__setattr__` call per field: evidence, decisions and states are made at every evaluation of every
    trigger (a replay makes millions). The dict becomes the instance's own; tests/rules check that what this
    makes has every field and equals what the constructor makes."""
    new = object.__new__(cls)
    _setattr(new, "__dict__", values)
    return new


def _json_num(v: float | None) -> float | str | None:
    if v is None or math.isfinite(v):
        return v
    return "+Inf" if v > 0 else "-Inf"


def _evidence(
    signal: str, value: float | None, rule: str, holds: bool | None, at: datetime | None, note: str
) -> Evidence:
    """`Evidence(...)` as `_frozen` makes it."""
    return _frozen(Evidence, {"signal": signal, "value": value, "rule": rule, "holds": holds, "at": at, "note": note})


class Verdict(NamedTuple):
    """A condition's value and the evidence for it. A named tuple, the cheapest immutable record: one is made
    for every node of a condition at every evaluation."""

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
        return Verdict(held, (_evidence(cond.signal, r.value, str(cond), held, r.at, ""),))
    if isinstance(cond, Jump):
        return _jump(cond, latest, history, now)
    assert isinstance(cond, (AllOf, AnyOf, AtLeast))  # a tuple: faster than a union, at every evaluation
    evidence: tuple[Evidence, ...] = ()
    trues = unknowns = 0
    for item in cond.items:
        part = evaluate(item, latest, history, now)
        evidence += part.evidence
        if part.holds is None:
            unknowns += 1
        elif part.holds:
            trues += 1
    need = len(cond.items) if isinstance(cond, AllOf) else 1 if isinstance(cond, AnyOf) else cond.count
    if trues >= need:
        return Verdict(True, evidence)
    if trues + unknowns >= need:
        return Verdict(None, evidence)
    return Verdict(False, evidence)


def _jump(cond: Jump, latest: Latest, history: History, now: datetime) -> Verdict:
    """Against the median of the earlier readings in the window: one dip or a counter reset does not
    become the baseline. From a zero baseline a relative rise is undefined: only 'by at least' decides."""
    r = latest.get(cond.signal)
    if r is None or not r.usable:
        note = "no reading yet" if r is None else f"no data: {r.detail or r.status}"
        return Verdict(None, (Evidence(cond.signal, None, str(cond), None, r.at if r else None, note),))
    assert r.value is not None

    def verdict(held: bool | None, note: str) -> Verdict:
        return Verdict(held, (_evidence(cond.signal, r.value, str(cond), held, r.at, note),))

    since = now - cond.within
    earlier = [
        h.value for h in history.get(cond.signal, ()) if since <= h.at < r.at and h.usable and h.value is not None
    ]
    if not earlier:
        return verdict(None, f"no earlier reading within {format_duration(cond.within)} to compare with")
    base = statistics.median(earlier)
    if base < 0 or math.isinf(base) or math.isinf(r.value):
        return verdict(None, f"baseline {base:g} cannot give a relative change")
    rise = r.value - base
    if cond.min_rise is not None and rise < cond.min_rise:
        return verdict(False, f"{rise:+g} vs median {base:g}: under the minimum rise {cond.min_rise:g}")
    if base == 0:
        if cond.min_rise is None:
            return verdict(None, "baseline is 0, so a relative rise is undefined; add 'by at least <amount>'")
        return verdict(True, f"{rise:+g} from a baseline of 0")
    percent = rise / base * 100
    return verdict(percent >= cond.percent, f"{percent:+.0f}% vs median {base:g} of {len(earlier)} earlier readings")


@dataclass(frozen=True)
class KpiScore:
    score: float | None
    gate: Literal["go", "hold", "rollback"] | None
    evidence: tuple[Evidence, ...]
    note: str = ""


def kpi_score(trigger: TriggerSpec, latest: Latest) -> KpiScore:
    """Weighted KPI: sum of w_i * m_i, gated into go / hold / rollback. Missing metrics are left out and the
    score renormalised over the weight present, while the missing share is within `max_missing`."""
    assert trigger.kpi is not None and trigger.below is not None
    evidence = []
    total = 0.0
    missing: list[str] = []
    for signal, weight in trigger.kpi.items():
        r = latest.get(signal)
        if r is None or not r.usable or r.value is None or math.isinf(r.value):
            missing.append(signal)
            note = "no reading yet" if r is None else f"no data: {r.detail or r.status}"
            evidence.append(_evidence(signal, None, f"weight {weight:g}", None, r.at if r else None, note))
            continue
        total += weight * r.value
        evidence.append(_evidence(signal, r.value, f"weight {weight:g}", None, r.at, f"{weight * r.value:+.4f}"))
    note = ""
    if missing:
        whole = sum(abs(w) for w in trigger.kpi.values())
        gone = sum(abs(trigger.kpi[s]) for s in missing)
        share = gone / whole if whole else 1.0
        names = ", ".join(missing)
        if share > trigger.max_missing or gone >= whole:
            note = f"no score: {names} missing ({share:.0%} of the weight; max_missing {trigger.max_missing:.0%})"
            return KpiScore(None, None, tuple(evidence), note)
        total *= whole / (whole - gone)
        note = f"renormalised over {1 - share:.0%} of the weight: {names} missing"
    if total < trigger.below:
        gate: Literal["go", "hold", "rollback"] = "rollback"
    elif trigger.hold_below is not None and total < trigger.hold_below:
        gate = "hold"
    else:
        gate = "go"
    return KpiScore(total, gate, tuple(evidence), note)


@dataclass(frozen=True)
class TriggerState:
    """What must survive between evaluations (and restarts) for one trigger."""

    pending_since: datetime | None = None
    firing: bool = False
    gate: str | None = None
    nodata_since: datetime | None = None  # start of the current stretch without data
    healthy_since: datetime | None = None  # while firing: since when the condition has been healthy
    outcomes: str = ""  # for 'breaches': the last M evaluations with data, oldest first, B(reached) or H(ealthy)
    blind: bool = False  # no_data hold/breach has acted in the current stretch without data


def _evolve(state: TriggerState, changes: dict[str, object]) -> TriggerState:
    """`dataclasses.replace` without its per-call introspection (it ran on every evaluation of every trigger);
    the changes in a dict, not as keywords (a call spreading `**base` into keywords cost as much again).
    Nothing changed: `state` itself, so that a steady trigger keeps one state object (equal, and cheaper to
    compare: `step_triggers` tells an unchanged state by identity)."""
    values = state.__dict__ | changes
    if values == state.__dict__:
        return state
    return _frozen(TriggerState, values)


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
    blind: bool = False  # no_data: hold/breach acted in this evaluation (the trigger cannot see)
    sighted: bool = False  # data is back after the trigger was blind
    note: str = ""  # why, when it is not the plain rule: fail-fast, N of M, kept firing, blind, renormalised

    def as_dict(self) -> dict[str, object]:
        return {
            "trigger": self.trigger,
            "status": self.status,
            "severity": self.severity,
            "rule": self.rule,
            "since": self.since.isoformat() if self.since else None,
            "score": self.score,
            "note": self.note,
            "evidence": [e.as_dict() for e in self.evidence],
        }


def _verdict(
    trigger: TriggerSpec, latest: Latest, history: History, now: datetime
) -> tuple[bool | None, tuple[Evidence, ...], float | None, str | None, str]:
    """(breached, evidence, KPI score, KPI gate, note) for this evaluation."""
    if trigger.kpi is not None:
        kpi = kpi_score(trigger, latest)
        return (None if kpi.gate is None else kpi.gate == "rollback"), kpi.evidence, kpi.score, kpi.gate, kpi.note
    assert trigger.condition is not None
    verdict = evaluate(trigger.condition, latest, history, now)
    return verdict.holds, verdict.evidence, None, None, ""


def step_trigger(
    name: str, trigger: TriggerSpec, state: TriggerState, latest: Latest, history: History, now: datetime
) -> tuple[Decision, TriggerState]:
    """Advance one trigger by one evaluation (the semantics are in playbooks/README.md, Triggers)."""
    holds, evidence, score, gate, note = _verdict(trigger, latest, history, now)
    fast = None if trigger.fail_fast is None else evaluate(trigger.fail_fast, latest, history, now)
    if fast is not None and fast.holds:
        evidence += fast.evidence
        note = f"fail-fast: {trigger.fail_fast}"

    def decide(status: Status, new: TriggerState, fired: bool = False, why: str = "") -> tuple[Decision, TriggerState]:
        decision = _frozen(
            Decision,
            {
                "trigger": name,
                "status": status,
                "fired": fired,
                "cleared": state.firing and not new.firing,
                "held": gate == "hold" and state.gate != "hold",
                "since": new.pending_since,
                "severity": trigger.severity,
                "rule": trigger.describe(),
                "evidence": evidence,
                "score": score,
                "blind": new.blind and not state.blind,
                "sighted": state.blind and not new.blind,
                "note": f"{why}; {note}" if why and note else why or note,
            },
        )
        return decision, new

    if holds is None and not (fast is not None and fast.holds):
        return _no_data(trigger, state, now, decide)

    pending = state.pending_since
    if pending is not None and state.nodata_since is not None and trigger.no_data == "keep":
        pending = min(pending + (now - state.nodata_since), now)  # no data paused the `for` timer
    outcomes = state.outcomes
    if trigger.breaches is not None and holds is not None:
        outcomes = (outcomes + ("B" if holds else "H"))[-trigger.breaches[1] :]
    # what every evaluation with data changes, applied with the rest of its changes (one copy of the state)
    base: dict[str, object] = {"nodata_since": None, "blind": False, "outcomes": outcomes, "gate": gate}

    if fast is not None and fast.holds:
        return decide(
            "firing",
            _evolve(state, {**base, "pending_since": pending or now, "firing": True, "healthy_since": None}),
            fired=not state.firing,
        )
    if holds:
        since = pending or now
        if trigger.breaches is not None:
            need, of = trigger.breaches
            count = outcomes.count("B")
            why = f"breached in {count} of the last {len(outcomes)} evaluations (fires at {need} of {of})"
            done = count >= need
        else:
            why, done = "", now - since >= trigger.for_
        if done or state.firing:
            return decide(
                "firing",
                _evolve(state, {**base, "pending_since": since, "firing": True, "healthy_since": None}),
                fired=not state.firing,
                why=why,
            )
        return decide("pending", _evolve(state, {**base, "pending_since": since, "healthy_since": None}), why=why)

    # healthy
    if state.firing and trigger.keep_firing_for:
        healthy = state.healthy_since or now
        if now - healthy < trigger.keep_firing_for:
            why = f"healthy since {healthy:%H:%M:%S}; keeps firing for {format_duration(trigger.keep_firing_for)}"
            return decide("firing", _evolve(state, {**base, "healthy_since": healthy}), why=why)
    if trigger.breaches is not None and "B" in outcomes:
        count = outcomes.count("B")
        why = f"breached in {count} of the last {len(outcomes)} evaluations (fires at {trigger.breaches[0]})"
        return decide(
            "pending",
            _evolve(state, {**base, "pending_since": pending, "firing": False, "healthy_since": None}),
            why=why,
        )
    new = _evolve(state, {**base, "pending_since": None, "firing": False, "healthy_since": None})
    return decide("hold" if gate == "hold" else "ok", new)


Decide = Callable[..., tuple[Decision, TriggerState]]


def _no_data(trigger: TriggerSpec, state: TriggerState, now: datetime, decide: Decide) -> tuple[Decision, TriggerState]:
    """keep: pause a pending `for`; reset: drop it; breach / hold: act once no data has lasted no_data_for."""
    since = state.nodata_since or now
    lasted = now - since
    after = trigger.no_data_for or timedelta(0)
    if lasted >= after and trigger.no_data in ("breach", "hold"):
        blind_for = f"no data for {format_duration(lasted) if lasted else '0s'}"  # worded only when it acts
        if trigger.no_data == "breach":
            new = _evolve(
                state,
                {
                    "nodata_since": since,
                    "blind": True,
                    "firing": True,
                    "healthy_since": None,
                    "pending_since": state.pending_since or since,
                },
            )
            why = f"{blind_for}: counted as a breach (no_data: breach)"
            return decide("firing", new, fired=not state.firing, why=why)
        new = _evolve(state, {"nodata_since": since, "blind": True})
        return decide("hold", new, why=f"blind: {blind_for}; HOLD until it can see (no_data: hold)")
    pending = None if trigger.no_data == "reset" else state.pending_since
    return decide("nodata", _evolve(state, {"nodata_since": since, "pending_since": pending}))
