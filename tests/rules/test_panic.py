"""The panic run's pure core: which days are due or missed (DST-correct), and the verdict of the checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from rollback_bot.playbook.conditions import parse_comparison
from rollback_bot.rules.panic import due_at, evaluate_checks, runs_due
from rollback_bot.rules.readings import Reading

PARIS = "Europe/Paris"
NINE = time(9, 0)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "at", "expected"),
    [
        (date(2026, 3, 28), NINE, utc(2026, 3, 28, 8, 0)),  # winter time, UTC+1
        (date(2026, 3, 29), NINE, utc(2026, 3, 29, 7, 0)),  # the day clocks go forward: already UTC+2
        (date(2026, 10, 25), NINE, utc(2026, 10, 25, 8, 0)),  # the day clocks go back: UTC+1 again
        (date(2026, 3, 29), time(2, 30), utc(2026, 3, 29, 1, 30)),  # a wall time that does not exist: 03:30 CEST
        (date(2026, 10, 25), time(2, 30), utc(2026, 10, 25, 0, 30)),  # a wall time that comes twice: the first
    ],
)
def test_due_at_is_the_wall_time_in_the_zone(day: date, at: time, expected: datetime) -> None:
    assert due_at(day, at, PARIS) == expected


def due(now: datetime, since: datetime, last: date | None = None) -> list[tuple[str, str]]:
    return [(d.day.isoformat(), d.action) for d in runs_due(at=NINE, zone=PARIS, since=since, last_day=last, now=now)]


@pytest.mark.parametrize(
    ("now", "since", "last", "expected"),
    [
        # not yet 09:00 in Paris (07:00 UTC in summer)
        (utc(2026, 3, 30, 6, 59), utc(2026, 3, 30, 6, 0), None, []),
        # on time, and a few minutes late (a slow tick, a restart): run
        (utc(2026, 3, 30, 7, 0), utc(2026, 3, 30, 6, 0), None, [("2026-03-30", "run")]),
        (utc(2026, 3, 30, 7, 14), utc(2026, 3, 30, 6, 0), None, [("2026-03-30", "run")]),
        # too late: missed
        (utc(2026, 3, 30, 7, 16), utc(2026, 3, 30, 6, 0), None, [("2026-03-30", "missed")]),
        # first start long after today's time: nobody's run to miss, none due
        (utc(2026, 3, 30, 14, 0), utc(2026, 3, 30, 14, 0), None, []),
        # first start just after the time: it runs
        (utc(2026, 3, 30, 7, 5), utc(2026, 3, 30, 7, 5), None, [("2026-03-30", "run")]),
        # today's run recorded: nothing more today
        (utc(2026, 3, 30, 12, 0), utc(2026, 3, 1), date(2026, 3, 30), []),
        # down from the 30th's run to the 2nd at 07:05 UTC: two days missed, today's runs
        (
            utc(2026, 4, 2, 7, 5),
            utc(2026, 3, 1),
            date(2026, 3, 30),
            [("2026-03-31", "missed"), ("2026-04-01", "missed"), ("2026-04-02", "run")],
        ),
        # over the change to summer time: the 29th's run was at 07:00 UTC, not 08:00
        (utc(2026, 3, 29, 7, 10), utc(2026, 3, 1), date(2026, 3, 28), [("2026-03-29", "run")]),
        (utc(2026, 3, 29, 6, 55), utc(2026, 3, 1), date(2026, 3, 28), []),
    ],
)
def test_runs_due(now: datetime, since: datetime, last: date | None, expected: list[tuple[str, str]]) -> None:
    assert due(now, since, last) == expected


AT = utc(2026, 3, 30, 7, 0)
CHECKS = [parse_comparison("errors < 0.01"), parse_comparison("latency < 800")]


def test_all_checks_hold_pass_with_the_figures() -> None:
    v = evaluate_checks(CHECKS, {"errors": Reading("errors", AT, 0.004), "latency": Reading("latency", AT, 512)})
    assert v.passed and v.failed == ()
    assert v.figures() == "errors=0.004 (< 0.01), latency=512 (< 800)"


@pytest.mark.parametrize(
    ("readings", "drifted"),
    [
        (
            {"errors": Reading("errors", AT, 0.03), "latency": Reading("latency", AT, 512)},
            "errors = 0.03 (needs < 0.01)",
        ),
        (
            {"errors": Reading("errors", AT, None, "error", "timeout"), "latency": Reading("latency", AT, 512)},
            "cannot see errors (timeout)",
        ),
        (
            {"errors": Reading("errors", AT, None, "nodata", "NaN"), "latency": Reading("latency", AT, 9e9)},
            "cannot see errors (NaN); latency = 9e+09 (needs < 800)",
        ),
        ({"latency": Reading("latency", AT, 1)}, "cannot see errors (not read)"),
    ],
)
def test_a_drift_or_no_data_fails_naming_the_check(readings: dict[str, Reading], drifted: str) -> None:
    v = evaluate_checks(CHECKS, readings)
    assert not v.passed
    assert v.drifted() == drifted
