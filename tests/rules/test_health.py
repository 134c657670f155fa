from __future__ import annotations

from datetime import UTC, datetime

from rollback_bot.rules import Reading, SignalHealth, track

T = datetime(2026, 1, 1, tzinfo=UTC)


def feed(readings: list[Reading], lost_after: int = 3, silent_after: int = 5) -> list[str | None]:
    health = SignalHealth()
    out: list[str | None] = []
    for r in readings:
        health, change = track(health, r, lost_after, silent_after)
        out.append(change)
    return out


def test_lost_after_n_consecutive_failures_once_then_restored() -> None:
    err = Reading.error("x", T, "unreachable")
    good = Reading.of("x", T, 1.0)
    assert feed([err, err, err, err, good, good]) == [None, None, "lost", None, "restored", None]


def test_a_good_read_resets_the_count() -> None:
    err = Reading.error("x", T, "HTTP 500")
    good = Reading.of("x", T, 1.0)
    assert feed([err, err, good, err, err]) == [None] * 5


def test_an_answer_without_a_value_is_not_a_lost_source_but_goes_silent() -> None:
    empty = Reading.nodata("x", T, "empty result")
    assert feed([empty] * 4) == [None] * 4
    assert feed([empty] * 7) == [None] * 4 + ["silent", None, None]
    assert feed([empty] * 5 + [Reading.of("x", T, 1.0)]) == [None] * 4 + ["silent", "restored"]


def test_a_vanished_series_after_a_lost_source_is_restored_then_silent() -> None:
    err, empty = Reading.error("x", T, "HTTP 500"), Reading.nodata("x", T, "empty result")
    assert feed([err] * 3 + [empty] * 2, silent_after=5) == [None, None, "lost", "restored", "silent"]


def test_old_samples_are_stale_not_silent() -> None:
    old = Reading.stale("x", T, "sample stamped 08:00:00, 1h old")
    assert old.is_stale and not old.usable
    assert feed([old] * 3, silent_after=3) == [None, None, "stale"]
