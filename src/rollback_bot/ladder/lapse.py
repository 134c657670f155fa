"""When approvals stop standing (pure: no I/O). An approval is given on evidence, every signal's value at the
click; before its action starts, it lapses when it is older than the playbook allows, when the trigger that
opened the incident has cleared, or when a value crossed back as the playbook defines (a `when` rule holds
now that did not hold at the click). No data now never makes an approval lapse: what cannot be seen decides
nothing."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.models import LapseSpec
from rollback_bot.rules.readings import Reading


@dataclass(frozen=True)
class Given:
    """An approval as this rule sees it: who, in which role, when, and the evidence stored with it."""

    user: str
    role: str
    at: datetime
    evidence: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Lapsed:
    given: Given
    reason: str  # in words, for the approvers: why their approval no longer stands
    rule: str  # after | trigger_cleared | the `when` rule that now holds


def lapsed(
    spec: LapseSpec,
    given: Sequence[Given],
    now: datetime,
    values: Mapping[str, Reading],
    *,
    trigger: str,
    trigger_cleared: bool | None,
) -> list[Lapsed]:
    """The approvals in `given` that lapse now, each with its reason (the first that applies)."""
    out: list[Lapsed] = []
    for g in given:
        age = now - g.at
        if spec.after is not None and age >= spec.after:
            why = (
                f"given {format_duration(age)} ago; approvals of this action lapse after {format_duration(spec.after)}"
            )
            out.append(Lapsed(g, why, "after"))
            continue
        if spec.trigger_cleared and trigger_cleared:
            out.append(Lapsed(g, f"trigger {trigger} has cleared since it was given", "trigger_cleared"))
            continue
        for rule in spec.when:
            reading = values.get(rule.signal)
            if reading is None or not reading.usable:  # no data now: decides nothing
                continue
            assert reading.value is not None
            then = _value(g.evidence.get(rule.signal))
            if rule.holds(reading.value) and (then is None or not rule.holds(then)):
                was = f"was {_num(then)}" if then is not None else "had no value"
                why = f"{rule.signal} is {_num(reading.value)} now, {was} when it was given ({rule} holds now)"
                out.append(Lapsed(g, why, str(rule)))
                break
    return out


def _value(entry: Mapping[str, Any] | None) -> float | None:
    if not entry:
        return None
    value = entry.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _num(x: float) -> str:
    return f"{x:.4g}"
