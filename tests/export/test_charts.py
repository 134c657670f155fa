"""Charts break their line where readings are missing."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from rollback_bot.export.charts import with_gaps

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def at(*seconds: int) -> list[tuple[datetime, float]]:
    return [(T0 + timedelta(seconds=s), float(i)) for i, s in enumerate(seconds)]


def gaps(points: list[tuple[datetime, float]]) -> list[int]:
    """Seconds after T0 of the breaks."""
    return [int((t - T0).total_seconds()) for t, v in with_gaps(points) if math.isnan(v)]


def test_a_gap_breaks_the_line_at_its_middle() -> None:
    assert gaps(at(0, 30, 60, 90, 600, 630, 660)) == [345]


def test_regular_or_slightly_late_readings_are_one_line() -> None:
    assert gaps(at(0, 30, 60, 100, 130, 160)) == []
    assert gaps(at(0, 30)) == []


def test_a_short_gap_under_a_minute_is_no_gap() -> None:
    assert gaps(at(0, 5, 10, 15, 50, 55)) == []


def test_several_gaps() -> None:
    assert gaps(at(0, 10, 20, 30, 200, 210, 220, 230, 900, 910)) == [115, 565]
