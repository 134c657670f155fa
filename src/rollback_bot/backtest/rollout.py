"""The rollout gate over history: the period cut into windows (a week by default, as release reviews compare
baseline and candidate), each judged by `rollout.gate.decide` as the live bot judges a stage (flows/rollout.py
calls the same function): GO, HOLD, ROLLBACK or NOT ENOUGH DATA, with its reasons. Pure: points in, verdicts out.

A window stands for one stage of the rollout (`stage`, the first by default): its minimum sample (requests the
candidate served in the window, from the growth of the `sample` counter) and minimum duration apply. As live, a
stage's readings are those after it began and up to the look, so a reading exactly at a window's start belongs
to the window before."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rollback_bot.playbook.models import RolloutSpec
from rollback_bot.rollout.gate import Comparison, Decision, Point, decide


@dataclass(frozen=True)
class WindowVerdict:
    start: datetime
    end: datetime
    decision: Decision

    @property
    def lowest_kpi(self) -> Comparison | None:
        """The segment whose KPI difference (candidate minus baseline) is lowest, if any was computed."""
        kpis = [c for c in self.decision.of("kpi") if c.difference is not None]
        return min(kpis, key=lambda c: c.difference or 0.0) if kpis else None


@dataclass(frozen=True)
class Gate:
    """The gate over a backtest's period: which stage each window stood for, how long a window is, the verdicts."""

    stage: int  # 1-based, as people number the stages
    window: timedelta
    windows: list[WindowVerdict]


def gate_windows(
    ro: RolloutSpec, points: Sequence[Point], start: datetime, end: datetime, window: timedelta, stage: int = 0
) -> list[WindowVerdict]:
    """The gate's verdict for each window from `start` to `end` (the last one may be shorter)."""
    if window <= timedelta(0):
        raise ValueError("the window must be longer than zero")
    if not 0 <= stage < len(ro.stages):
        raise ValueError(f"the rollout has stages 1 to {len(ro.stages)}")
    ordered = sorted(points, key=lambda p: p.at)
    times = [p.at for p in ordered]
    out = []
    at = start
    while at < end:
        until = min(at + window, end)
        inside = ordered[bisect_right(times, at) : bisect_right(times, until)]  # (at, until], as decide reads
        out.append(WindowVerdict(at, until, decide(ro, stage, at, until, inside)))
        at = until
    return out
