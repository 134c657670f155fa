"""Staged actions advance one stage at a time: a stage runs only after the previous one succeeded and
`stage_every` has passed since."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rollback_bot.playbook.models import ActionSpec


@dataclass(frozen=True)
class StageRun:
    stage: float
    status: str  # running | succeeded | failed
    finished_at: datetime | None


def next_stage(action: ActionSpec, runs: Sequence[StageRun], now: datetime) -> float | None:
    """The stage due now, or None (all done, one in flight or failed, or waiting for stage_every)."""
    by_stage = {r.stage: r for r in runs}
    for stage in action.stage_list:
        run = by_stage.get(stage)
        if run is None:
            prev = [r for r in runs if r.stage < stage]
            if prev:
                last = max(prev, key=lambda r: r.stage)
                if last.finished_at is None or now - last.finished_at < action.stage_every:
                    return None
            return stage
        if run.status != "succeeded":
            return None  # in flight, or failed: a person decides what happens next
    return None


def next_stage_at(action: ActionSpec, runs: Sequence[StageRun]) -> datetime | None:
    """When the next stage becomes due by `stage_every` (the one before it succeeded), or None: none left, or
    one is in flight or failed, or none ran yet (the first starts when the approvals complete)."""
    by_stage = {r.stage: r for r in runs}
    last: StageRun | None = None
    for stage in action.stage_list:
        run = by_stage.get(stage)
        if run is None:
            return last.finished_at + action.stage_every if last is not None and last.finished_at else None
        if run.status != "succeeded":
            return None
        last = run
    return None
