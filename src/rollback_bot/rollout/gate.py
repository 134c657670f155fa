"""The rollout gate: candidate against baseline over a stage, by segment. Pure: readings in, a decision out.

Each stage's decision is one of GO, HOLD, ROLLBACK or NOT ENOUGH DATA, and says why:

1. Below the stage's minimum sample (requests the candidate served since the stage began): NOT ENOUGH DATA,
   whatever the figures say. Never a go, never a rollback on a handful of requests.
2. A guardrail breached (the candidate worse than the baseline by more than `by`, and the difference
   significant; or its own value above `above`), or the weighted KPI of the candidate minus the baseline's
   under `rollback_below` with the difference significant, in any segment: ROLLBACK.
3. A hold signal breached, or the KPI difference under `hold_below` (significant), in any segment: HOLD.
4. A decision signal without enough readings of either version, or a difference past its threshold that the
   noise could explain: NOT ENOUGH DATA.
5. The stage younger than its minimum duration: NOT ENOUGH DATA (no go yet).
6. Otherwise GO.

Noise: each signal's readings of the two versions over the stage are compared with a two-sided Mann-Whitney U
test (as Kayenta does); a difference counts when p < alpha. The KPI difference gets a (1 - alpha) confidence
interval from the readings' variances (normal approximation), and counts when the interval excludes zero.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.models import RolloutRuleSpec, RolloutSpec

Version = Literal["baseline", "candidate"]
Verdict = Literal["GO", "HOLD", "ROLLBACK", "NOT ENOUGH DATA"]
Kind = Literal["guardrail", "hold", "diagnostic", "kpi"]
State = Literal["ok", "breach", "warn", "uncertain", "nodata", "shown"]
WHOLE = ""  # the segment of a signal read as a whole
VERSIONS: tuple[Version, Version] = ("baseline", "candidate")


@dataclass(frozen=True)
class Point:
    """One usable reading of a signal for one version (and segment) at one time."""

    signal: str
    version: Version
    segment: str
    at: datetime
    value: float


@dataclass(frozen=True)
class Comparison:
    """One signal (or the KPI) in one segment: candidate against baseline over the stage."""

    kind: Kind
    signal: str
    segment: str
    baseline: float | None
    candidate: float | None
    points: tuple[int, int]  # readings of (baseline, candidate)
    p_value: float | None = None  # Mann-Whitney for signals
    interval: tuple[float, float] | None = None  # confidence interval of the KPI difference ...
    level: float = 0.95  # ... at this confidence
    state: State = "ok"
    rule: str = ""

    @property
    def difference(self) -> float | None:
        if self.baseline is None or self.candidate is None:
            return None
        return self.candidate - self.baseline


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    why: list[str]  # the reasons, most important first
    sample: float
    min_sample: int
    in_stage: timedelta
    min_duration: timedelta
    comparisons: list[Comparison] = field(default_factory=list)

    def of(self, kind: Kind) -> list[Comparison]:
        return [c for c in self.comparisons if c.kind == kind]

    @property
    def worse(self) -> list[Comparison]:
        """What is worse, per segment: breaches first, then warnings and what the noise could explain."""
        order = {"breach": 0, "warn": 1, "uncertain": 2}
        kinds = {"guardrail": 0, "hold": 1, "kpi": 2}
        bad = [c for c in self.comparisons if c.state in order]
        return sorted(bad, key=lambda c: (order[c.state], kinds.get(c.kind, 3), c.segment, c.signal))


def decide(ro: RolloutSpec, stage_index: int, entered_at: datetime, now: datetime, points: Iterable[Point]) -> Decision:
    stage = ro.stages[stage_index]
    series: defaultdict[tuple[str, Version, str], list[float]] = defaultdict(list)
    sample_points: list[tuple[datetime, float]] = []
    for p in points:
        if p.at <= entered_at or p.at > now or not math.isfinite(p.value):
            continue
        series[(p.signal, p.version, p.segment)].append(p.value)
        if p.signal == ro.sample and p.version == "candidate" and p.segment == WHOLE:
            sample_points.append((p.at, p.value))
    sample = served(sample_points)
    in_stage = max(now - entered_at, timedelta(0))
    comparisons = _compare_rules(ro, series) + _compare_kpi(ro, series) + _diagnostics(ro, series)
    why: list[str] = []

    def said(state: str, kinds: Sequence[Kind]) -> list[str]:
        return [describe(c) for c in comparisons if c.state == state and c.kind in kinds]

    base = {"sample": sample, "min_sample": stage.min_sample, "in_stage": in_stage}
    base |= {"min_duration": stage.min_duration, "comparisons": comparisons}
    if sample < stage.min_sample:
        why = [f"sample {sample:g} of {stage.min_sample} requests served by the candidate in this stage"]
        early = said("breach", ("guardrail", "hold", "kpi"))
        if early:
            why.append("early signs (not acted on): " + "; ".join(early))
        return Decision("NOT ENOUGH DATA", why, **base)  # type: ignore[arg-type]
    rollback = said("breach", ("guardrail",)) + [
        describe(c)
        for c in comparisons
        if c.kind == "kpi" and c.state == "breach" and _under(c, ro.gate.rollback_below)
    ]
    if rollback:
        return Decision("ROLLBACK", rollback, **base)  # type: ignore[arg-type]
    hold = said("breach", ("hold", "kpi"))
    if hold:
        return Decision("HOLD", hold, **base)  # type: ignore[arg-type]
    unsure = said("nodata", ("guardrail", "hold", "kpi")) + said("uncertain", ("guardrail", "hold", "kpi"))
    if unsure:
        return Decision("NOT ENOUGH DATA", unsure, **base)  # type: ignore[arg-type]
    if in_stage < stage.min_duration:
        why = [f"stage running {format_duration(_minutes(in_stage))} of its {format_duration(stage.min_duration)}"]
        return Decision("NOT ENOUGH DATA", why, **base)  # type: ignore[arg-type]
    kpis = [c for c in comparisons if c.kind == "kpi"]
    lowest = min(kpis, key=lambda c: c.difference or 0.0)
    why = [f"every guardrail and hold within bounds; KPI difference {_fmt(lowest.difference)} (lowest, {_seg(lowest)})"]
    return Decision("GO", why, **base)  # type: ignore[arg-type]


def served(points: Sequence[tuple[datetime, float]]) -> float:
    """Requests served in the stage from a counter's readings: its growth, across resets."""
    total, last = 0.0, None
    for _, value in sorted(points):
        if last is not None:
            total += value - last if value >= last else value  # a reset starts from zero
        last = value
    return total


def describe(c: Comparison) -> str:
    """One line a person reads: 'urgency=high: override_rate 0.31 vs baseline 0.12 (p=0.004)'."""
    where = f"{c.segment}: " if c.segment else ""
    if c.state == "nodata":
        b, n = c.points
        return f"{where}{c.signal}: too few readings ({b} baseline, {n} candidate)"
    if c.kind == "kpi":
        lo_hi = f", {c.level:.0%} CI {_fmt(c.interval[0])} to {_fmt(c.interval[1])}" if c.interval else ""
        text = f"{where}KPI {_fmt(c.candidate)} vs baseline {_fmt(c.baseline)} (difference {_fmt(c.difference)}{lo_hi})"
    elif c.baseline is None:
        text = f"{where}{c.signal} {_fmt(c.candidate)}"
    else:
        p = f" (p={c.p_value:.2g})" if c.p_value is not None else ""
        text = f"{where}{c.signal} {_fmt(c.candidate)} vs baseline {_fmt(c.baseline)}{p}"
    if c.state == "uncertain":
        text += ": past its threshold, but within noise"
    elif c.rule and c.state in ("breach", "warn"):
        text += f": {c.rule}"
    return text


# --- comparisons -----------------------------------------------------------------------------------------------
Series = Mapping[tuple[str, Version, str], list[float]]


def _segments(series: Series, signals: Iterable[str]) -> list[str]:
    """The segments the named signals were read in; the whole only when none of them has segments."""
    names = set(signals)
    segs = sorted({seg for (sig, _, seg) in series if sig in names and seg != WHOLE})
    return segs or [WHOLE]


def _values(series: Series, signal: str, version: Version, segment: str) -> list[float]:
    """A segment's readings, or the whole signal's when it is not read per segment."""
    return series.get((signal, version, segment)) or series.get((signal, version, WHOLE)) or []


def _compare_rules(ro: RolloutSpec, series: Series) -> list[Comparison]:
    out = []
    for kind, rules in (("guardrail", ro.guardrails), ("hold", ro.holds)):
        for rule in rules:
            for seg in _segments(series, [rule.signal]):
                out.append(_rule(ro, kind, rule, series, seg))  # type: ignore[arg-type]
    return out


def _rule(ro: RolloutSpec, kind: Kind, rule: RolloutRuleSpec, series: Series, seg: str) -> Comparison:
    cand = _values(series, rule.signal, "candidate", seg)
    state: State = "ok"
    if rule.above is not None:  # the candidate's own value (a drift or bias score)
        if len(cand) < 1:
            return Comparison(kind, rule.signal, seg, None, None, (0, 0), state="nodata", rule=rule.describe())
        mean = statistics.fmean(cand)
        if mean > rule.above:
            state = "breach"
        elif rule.warn is not None and mean > rule.warn:
            state = "warn"
        return Comparison(kind, rule.signal, seg, None, mean, (0, len(cand)), state=state, rule=rule.describe())
    base = _values(series, rule.signal, "baseline", seg)
    if len(base) < ro.min_points or len(cand) < ro.min_points:
        return Comparison(
            kind, rule.signal, seg, None, None, (len(base), len(cand)), state="nodata", rule=rule.describe()
        )
    b, c = statistics.fmean(base), statistics.fmean(cand)
    p = _mann_whitney(base, cand)
    assert rule.by is not None
    worse_by = c - b if rule.worse == "higher" else b - c
    if worse_by > rule.by:
        state = "breach" if p < ro.alpha else "uncertain"
    return Comparison(
        kind, rule.signal, seg, b, c, (len(base), len(cand)), p_value=p, state=state, rule=rule.describe()
    )


def _compare_kpi(ro: RolloutSpec, series: Series) -> list[Comparison]:
    """The weighted KPI, sum of w_i * mean(m_i), of each version per segment, and the difference's interval."""
    gate, out = ro.gate, []
    for seg in _segments(series, gate.kpi):
        got = {(sig, v): _values(series, sig, v, seg) for sig in gate.kpi for v in VERSIONS}
        points = (min(len(got[s, "baseline"]) for s in gate.kpi), min(len(got[s, "candidate"]) for s in gate.kpi))
        if min(points) < ro.min_points:
            out.append(Comparison("kpi", "KPI", seg, None, None, points, state="nodata", rule=gate.describe()))
            continue
        score = {v: sum(w * statistics.fmean(got[s, v]) for s, w in gate.kpi.items()) for v in VERSIONS}
        variance = sum(
            w * w * statistics.variance(got[s, v]) / len(got[s, v]) for s, w in gate.kpi.items() for v in VERSIONS
        )
        diff = score["candidate"] - score["baseline"]
        half = statistics.NormalDist().inv_cdf(1 - ro.alpha / 2) * math.sqrt(variance)
        interval = (diff - half, diff + half)
        state: State = "ok"
        rule = ""
        if diff < gate.hold_below:
            # counts when the interval says so: the candidate really is worse (or really short of a required gain)
            state = "breach" if interval[1] < max(gate.hold_below, 0.0) else "uncertain"
            which = "rollback" if diff < gate.rollback_below else "hold"
            rule = f"under the {which} gate ({gate.hold_below:g} hold, {gate.rollback_below:g} roll back)"
        level = 1 - ro.alpha
        out.append(
            Comparison(
                "kpi", "KPI", seg, score["baseline"], score["candidate"], points, interval=interval, level=level,
                state=state, rule=rule,
            )
        )  # fmt: skip
    return out


def _diagnostics(ro: RolloutSpec, series: Series) -> list[Comparison]:
    out = []
    for sig in ro.diagnostics:
        for seg in _segments(series, [sig]):
            base, cand = _values(series, sig, "baseline", seg), _values(series, sig, "candidate", seg)
            b = statistics.fmean(base) if base else None
            c = statistics.fmean(cand) if cand else None
            p = _mann_whitney(base, cand) if len(base) >= ro.min_points and len(cand) >= ro.min_points else None
            out.append(Comparison("diagnostic", sig, seg, b, c, (len(base), len(cand)), p_value=p, state="shown"))
    return out


def _mann_whitney(base: Sequence[float], cand: Sequence[float]) -> float:
    if len(set(base) | set(cand)) == 1:  # all equal: no difference at all (the test is undefined)
        return 1.0
    from scipy.stats import mannwhitneyu  # here: importing scipy.stats is 1.2 s of every process's start

    return float(mannwhitneyu(cand, base, alternative="two-sided").pvalue)


def _under(c: Comparison, threshold: float) -> bool:
    return c.difference is not None and c.difference < threshold


def _minutes(d: timedelta) -> timedelta:
    return timedelta(minutes=d.total_seconds() // 60) if d >= timedelta(minutes=1) else timedelta(seconds=d.seconds)


def _fmt(value: float | None) -> str:
    if value is None:
        return "no data"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _seg(c: Comparison) -> str:
    return c.segment or "all traffic"
