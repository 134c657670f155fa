"""Where an incident stands on its ladder, from the time elapsed since it opened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from rollback_bot.playbook.models import Playbook, StepSpec


@dataclass(frozen=True)
class Position:
    index: int | None  # None once the last window has closed
    elapsed: timedelta
    step: StepSpec | None
    time_left: timedelta | None
    next_step: StepSpec | None


def next_boundary(pb: Playbook, step_index: int) -> timedelta | None:
    """Elapsed time at which the step after `step_index` starts (or the ladder ends); None after that."""
    if step_index + 1 < len(pb.ladder):
        return pb.ladder[step_index + 1].start
    if step_index < len(pb.ladder):
        return pb.duration
    return None


def position(pb: Playbook, elapsed: timedelta) -> Position:
    """The step whose window holds `elapsed` (windows are [start, end), contiguous from 0)."""
    elapsed = max(elapsed, timedelta(0))
    for i, step in enumerate(pb.ladder):
        if step.start <= elapsed < step.end:
            nxt = pb.ladder[i + 1] if i + 1 < len(pb.ladder) else None
            left = step.end - elapsed
            return Position(i, elapsed, step, left, nxt)
    return Position(None, elapsed, None, None, None)
