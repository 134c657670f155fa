"""Pure core of the daily panic run: which days' runs are due (or were missed) by now, and the verdict of the
checks on what was just read. Days and times are wall-clock in the run's zone (zoneinfo: DST-correct)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from rollback_bot.playbook.conditions import Compare
from rollback_bot.rules.readings import Reading

GRACE = timedelta(minutes=15)  # a run this late (a slow tick, a restart) still runs; later, it was missed
MAX_DAYS = 400  # a longer outage reports its last MAX_DAYS days only


def due_at(day: date, at: time, zone: str) -> datetime:
    """The instant of `at` on `day` in `zone`. In a spring-forward gap, the wall time read with the offset
    before the change (02:30 on the day clocks jump 02:00 -> 03:00 is 03:30 summer time); in the repeated
    hour of autumn, the first."""
    return datetime.combine(day, at, tzinfo=ZoneInfo(zone)).astimezone(ZoneInfo("UTC"))


@dataclass(frozen=True)
class Due:
    day: date
    due_at: datetime
    action: Literal["run", "missed"]


def runs_due(
    *, at: time, zone: str, since: datetime, last_day: date | None, now: datetime, grace: timedelta = GRACE
) -> Iterator[Due]:
    """Each day after `last_day` (the last one recorded) whose run time has come by `now`: to run, when at
    most `grace` late; missed otherwise. Days due before `since` (when runs began to be kept) are skipped."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    day = last_day + timedelta(days=1) if last_day is not None else since.astimezone(tz).date() - timedelta(days=1)
    day = max(day, today - timedelta(days=MAX_DAYS))
    while day <= today:
        when = due_at(day, at, zone)
        if when > now:
            break
        if when >= since - grace:
            yield Due(day, when, "run" if now - when <= grace else "missed")
        day += timedelta(days=1)


@dataclass(frozen=True)
class CheckResult:
    check: str  # the rule as written, e.g. 'error_rate < 0.01'
    signal: str
    value: float | None
    ok: bool
    problem: str = ""  # why it failed, in words: 'error_rate = 0.03 (needs < 0.01)', 'cannot see error_rate (...)'
    against_baseline: bool = False  # a drift check: `problem` then says the change even when it passed


@dataclass(frozen=True)
class Verdict:
    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    def figures(self) -> str:
        """'error_rate=0.004 (< 0.01; +5% from its 7-day baseline 0.0038), p95_ms=512 (< 800; ...)'"""
        out = []
        for signal in dict.fromkeys(r.signal for r in self.results):
            mine = [r for r in self.results if r.signal == signal]
            value = next((r.value for r in mine), None)
            said = [r.problem if r.against_baseline else r.check.removeprefix(signal).strip() for r in mine]
            out.append(f"{signal}={_value(value)} ({'; '.join(said)})")
        return ", ".join(out)

    def drifted(self) -> str:
        """What failed: 'error_rate = 0.03 (needs < 0.01); cannot see p95_ms (timeout)'"""
        return "; ".join(r.problem for r in self.failed)


def _value(value: float | None) -> str:
    return "no data" if value is None else f"{value:g}"


def against_baseline(
    verdict: Verdict, baselines: Mapping[str, Sequence[float]], *, max_change: float, min_runs: int, days: int
) -> Verdict:
    """Add a drift check per signal read today: its value against the median of its recent passed runs. Fewer
    than `min_runs` earlier values, or a zero baseline, is said (the check passes, saying why it could not
    compare), never silently skipped."""
    out = list(verdict.results)
    for signal in dict.fromkeys(r.signal for r in verdict.results):
        value = next((r.value for r in verdict.results if r.signal == signal and r.value is not None), None)
        if value is None:
            continue  # cannot see it: already a failure of its check
        history = [v for v in baselines.get(signal, ()) if not math.isnan(v)]
        rule = f"{signal} within {max_change:.0%} of its {days}-day baseline"
        if len(history) < min_runs:
            too_few = f"{len(history)} of {min_runs} runs for a baseline"
            out.append(CheckResult(rule, signal, value, True, too_few, against_baseline=True))
            continue
        base = statistics.median(history)
        if base == 0:
            ok = value == 0
            change_text = "from a baseline of 0"
        else:
            change = (value - base) / abs(base)
            ok = abs(change) <= max_change
            change_text = f"{change:+.0%} from its {days}-day baseline {base:g}"
        problem = "" if ok else f"{signal} = {value:g} drifted {change_text} (max {max_change:.0%})"
        out.append(CheckResult(rule, signal, value, ok, problem or change_text, against_baseline=True))
    return Verdict(tuple(out))


def evaluate_checks(checks: Sequence[Compare], readings: Mapping[str, Reading]) -> Verdict:
    """Each check against its signal's reading. No usable reading is a failure, never a silent pass."""
    results = []
    for check in checks:
        r = readings.get(check.signal)
        rule = str(check)
        if r is None or not r.usable or r.value is None or math.isnan(r.value):
            why = (r.detail or r.status) if r is not None else "not read"
            results.append(CheckResult(rule, check.signal, None, False, f"cannot see {check.signal} ({why})"))
        elif check.holds(r.value):
            results.append(CheckResult(rule, check.signal, r.value, True))
        else:
            needs = rule.removeprefix(check.signal).strip()
            problem = f"{check.signal} = {r.value:g} (needs {needs})"
            results.append(CheckResult(rule, check.signal, r.value, False, problem))
    return Verdict(tuple(results))
