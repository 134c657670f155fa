"""How fast a drill's clock runs, pure. The scheduler never polls faster than a floor of real time
(`min_real_interval`, so a drill cannot flood its own sandbox); at x1440 a 0.2 s floor is 4.8 drill-minutes, and
polls every 20s would come that far apart: detection would read late because of the drill, not the playbook.
So the default speed is the fastest at which the playbook's shortest `every` still holds (at most x1440); a
speed at which it does not is said at the start and in the report. Speeds outside MIN_SPEED..MAX_SPEED, and a
drill longer than LONGEST of real time (unless asked for), are refused with what would fit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.models import Playbook
from rollback_bot.rules.polling import poll_groups

LADDER_SPEED = 1440.0  # a 24h ladder in a minute, when its polls allow
MIN_SPEED, MAX_SPEED = 1.0, 5000.0  # slower than real time is no drill; faster, the scripted people fall behind
LONGEST = timedelta(hours=1)  # of real time; a longer drill needs --long


class DrillRefused(Exception):
    pass


def speed_problem(speed: float) -> str | None:
    """Why `speed` is no usable drill speed, in one line; None when it is."""
    if math.isfinite(speed) and MIN_SPEED <= speed <= MAX_SPEED:
        return None
    return f"--speed {speed:g}: a drill runs from x{MIN_SPEED:g} (real time) to x{MAX_SPEED:g}"


def _text(seconds: float) -> str:
    """1h41m, 34s: to the minute from an hour on."""
    whole = max(1, round(seconds) if seconds < 3600 else 60 * round(seconds / 60))
    return format_duration(timedelta(seconds=whole))


@dataclass(frozen=True)
class Pace:
    """A ladder drill's speed and what it means for its polls (clock time) and its length (real time)."""

    speed: float
    real: timedelta  # about how long the drill takes
    every: timedelta | None  # the playbook's shortest poll interval (None: it polls nothing)
    polled: timedelta | None  # how often those polls really come at this speed
    faithful: float  # the fastest speed keeping every poll interval as written

    floor: float  # seconds of real time between polls, at least

    @property
    def late_polls(self) -> str | None:
        """One line when the polls come further apart than the playbook says; None when they keep it."""
        if self.every is None or self.polled is None or self.polled <= self.every:
            return None
        return (
            f"at x{self.speed:g}, polls every {format_duration(self.every)} come every "
            f"{_text(self.polled.total_seconds())} of drill time (the scheduler polls at most every "
            f"{self.floor:g} s of real time): detection will read late; --speed {math.floor(self.faithful)} keeps them"
        )

    @property
    def slowed(self) -> str | None:
        """One line when the default ran slower than LADDER_SPEED to keep the polls: why, and how to go faster."""
        if self.speed >= LADDER_SPEED or self.every is None:
            return None
        return (
            f"x{self.speed:g} keeps the polls every {format_duration(self.every)} (the scheduler polls at most every "
            f"{self.floor:g} s of real time); --speed {LADDER_SPEED:g} is quicker, with detection reading late"
        )


def plan(
    pb: Playbook,
    fault_after: timedelta,
    speed: float | None,
    min_real_interval: float,
    *,
    long: bool = False,
) -> Pace:
    """The drill's pace: `speed`, or by default the fastest (up to LADDER_SPEED) that keeps the playbook's polls,
    faster only to fit in LONGEST. DrillRefused for a bad speed, or a drill over LONGEST without `long`."""
    if speed is not None and (problem := speed_problem(speed)):
        raise DrillRefused(problem)
    everies = [g.every for g in poll_groups(pb) if g.every > timedelta(0)]
    every = min(everies, default=None)
    faithful = LADDER_SPEED
    if every is not None and min_real_interval > 0:
        faithful = max(MIN_SPEED, math.floor(every.total_seconds() / min_real_interval + 1e-9))
    drill_time = (fault_after + pb.duration).total_seconds()
    fits = math.ceil(drill_time / LONGEST.total_seconds())  # the slowest speed that fits in LONGEST
    if speed is None:
        speed = min(LADDER_SPEED, faithful)
        if not long:
            speed = max(speed, fits)
        speed = min(max(speed, MIN_SPEED), MAX_SPEED)
    real = drill_time / speed
    if real > LONGEST.total_seconds() and not long:
        at = f"at x{speed:g} this drill (the fault at T+{format_duration(fault_after)}, then the "
        at += f"{format_duration(pb.duration)} ladder) takes ~{_text(real)} of real time"
        if fits <= MAX_SPEED:
            fit = f"--speed {fits} or more fits it in {format_duration(LONGEST)}"
        else:
            fit = f"no speed up to x{MAX_SPEED:g} fits it in {format_duration(LONGEST)}"
        raise DrillRefused(f"{at}; {fit}, or --long runs it however long it takes")
    polled = None
    if every is not None:
        polled = max(every, timedelta(seconds=min_real_interval * speed))
    return Pace(speed, timedelta(seconds=real), every, polled, faithful, min_real_interval)
