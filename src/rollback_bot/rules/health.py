"""Signal health, once per episode: consecutive failed reads raise 'signal lost'; consecutive answers without
data (empty, null, NaN) raise 'signal silent', or 'signal stale' when the answers are old samples; the next
read with a value (or, after 'lost', any answer) raises 'signal restored'."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rollback_bot.rules.readings import Reading


@dataclass(frozen=True)
class SignalHealth:
    failures: int = 0  # consecutive failed reads
    lost: bool = False
    empties: int = 0  # consecutive reads without a value (failed reads included)
    silent: bool = False  # a 'silent' or 'stale' episode has been announced


Change = Literal["lost", "silent", "stale", "restored"] | None


def track(health: SignalHealth, reading: Reading, lost_after: int, silent_after: int) -> tuple[SignalHealth, Change]:
    if reading.usable:
        return SignalHealth(), "restored" if health.lost or health.silent else None
    empties = health.empties + 1
    if reading.status != "error":
        # an answer, without data: the source is not lost (any more), but it may be silent
        if health.lost:
            return SignalHealth(0, False, empties, health.silent), "restored"
        if not health.silent and empties >= silent_after:
            return SignalHealth(0, False, empties, True), "stale" if reading.is_stale else "silent"
        return SignalHealth(0, False, empties, health.silent), None
    failures = health.failures + 1
    if not health.lost and failures >= lost_after:
        return SignalHealth(failures, True, empties, health.silent), "lost"
    return SignalHealth(failures, health.lost, empties, health.silent), None
