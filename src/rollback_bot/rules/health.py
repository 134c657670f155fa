"""Signal health: consecutive failed reads (unreachable, error answers, garbage) raise 'signal lost' once;
the next read that gets an answer restores it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rollback_bot.rules.readings import Reading


@dataclass(frozen=True)
class SignalHealth:
    failures: int = 0
    lost: bool = False


Change = Literal["lost", "restored"] | None


def track(health: SignalHealth, reading: Reading, lost_after: int) -> tuple[SignalHealth, Change]:
    """Only failed reads (status 'error') count: a source that answers, even with no value, is not lost."""
    if reading.status != "error":
        return SignalHealth(0, False), "restored" if health.lost else None
    failures = health.failures + 1
    if not health.lost and failures >= lost_after:
        return SignalHealth(failures, True), "lost"
    return SignalHealth(failures, health.lost), None
