"""The real scheduler (APScheduler 3): one poll job per (playbook, interval) group, one ladder tick.

Intervals are written in clock time (the playbook's `every`); a compressed clock runs them faster,
down to `deps.min_real_interval` seconds so a drill cannot flood its own sources.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from rollback_bot import flows
from rollback_bot.flows import panic, rollout
from rollback_bot.flows.deps import Deps
from rollback_bot.leadership import Leadership
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.rules.polling import PollGroup, poll_groups
from rollback_bot.store.leader import Fenced

log = logging.getLogger(__name__)
TICK_EVERY = timedelta(seconds=30)


TICK_FLOOR = 0.1  # seconds of real time; what falls due gets its own exact wake-up (see _plan)
WATCHDOG_EVERY = timedelta(seconds=5)
PLAN_EVERY = timedelta(seconds=1)  # how often the leader looks for what falls due next (one light query)
WATCHDOG_FLOOR = 0.2


def led(leadership: Leadership | None, job: Callable[..., object]) -> Callable[..., object]:
    """The job as run among several scheduler processes: only by the leader, under its fence."""
    if leadership is None:
        return job

    def run(*args: Any) -> None:
        leadership.run(lambda: job(*args))

    run.__name__ = run.__qualname__ = job.__name__
    return run


def run_everything_now(sched: BackgroundScheduler) -> None:
    """After a takeover: every job at once (the first poll, the ladder tick, the catch-up), not at its next slot."""
    now = datetime.now(UTC)
    for job in sched.get_jobs():
        if job.next_run_time is not None and job.next_run_time > now:
            job.modify(next_run_time=now)


def real_seconds(deps: Deps, every: timedelta, floor: float) -> float:
    return max(every.total_seconds() / deps.clock.speed, floor)


@contextmanager
def _survives(what: str, *args: object) -> Iterator[None]:
    """A run of a job that fails (a broken source, a database hiccup, a bug) is logged, and the next run tries
    again: it must not kill the job. Fenced goes up: this process no longer leads (leadership.py)."""
    try:
        yield
    except Fenced:
        raise
    except Exception:
        log.exception(what, *args)


def _poll(deps: Deps, loaded: LoadedPlaybook, group: PollGroup) -> None:
    with _survives("polling %s every %s failed; next run will try again", loaded.playbook.name, group.name):
        flows.poll(deps, loaded, list(group.signals), group=group)  # the watchdog tells when polls fail


def _observe_rollout(deps: Deps, loaded: LoadedPlaybook) -> None:
    with _survives("observing the rollout of %s failed; next run will try again", loaded.playbook.name):
        rollout.observe(deps, loaded)


PANIC_EVERY = timedelta(seconds=30)  # how often a panic run is looked at: due now, or missed while down


def _panic_run(deps: Deps, loaded: LoadedPlaybook) -> None:
    with _survives("the panic run of %s failed; next run will try again", loaded.playbook.name):
        panic.run_due(deps, loaded)  # a run not recorded is retried, or reported missed


class _AlertLook:
    """Every PLAN_EVERY: what Alertmanager sent since the last look is polled at once (flows.poll_alerts)."""

    def __init__(self, deps: Deps, playbooks: Sequence[LoadedPlaybook]) -> None:
        self.deps, self.playbooks = deps, playbooks
        self.seen: datetime | None = None  # a new leader looks at everything once

    def __call__(self) -> None:
        with _survives("looking for alerts from Alertmanager failed; the next look tries again"):
            self.seen = flows.poll_alerts(self.deps, self.playbooks, self.seen)


def _watchdog(deps: Deps, playbooks: Sequence[LoadedPlaybook], since: datetime | None) -> None:
    with _survives("watchdog check failed; next run will try again"):
        flows.check_polling(deps, playbooks, since)


def _tick(deps: Deps) -> None:
    """Advance open incidents (every TICK_EVERY: the safety net; _plan keeps the exact times)."""
    with _survives("ladder tick failed; next run will try again"):
        flows.tick(deps)


def _plan(deps: Deps) -> None:
    """Every PLAN_EVERY: when the next step, stage or reminder of an open incident falls due before the next
    look, wait for that moment and advance the ladders then. A stage that finished in another process (a web
    worker, a standby) is seen here within a look. Jobs never add jobs: APScheduler's shutdown holds the lock
    add_job needs while it waits for running jobs, so that would hang a stopping process."""
    due = None
    with _survives("planning the next ladder wake-up failed; the next look tries again"):
        due = flows.next_step_due(deps)
    if due is None:
        return
    wait = (due - deps.now()).total_seconds() / deps.clock.speed
    if wait > real_seconds(deps, PLAN_EVERY, TICK_FLOOR):
        return  # a later look catches it
    if wait > 0:
        time.sleep(wait)
    _tick(deps)


def build_scheduler(
    deps: Deps,
    playbooks: Sequence[LoadedPlaybook],
    *,
    tick_every: timedelta = TICK_EVERY,
    leadership: Leadership | None = None,
) -> BackgroundScheduler:
    """`leadership`: among several scheduler processes, every job runs only in the one that leads, fenced by
    its token (leadership.py); when a process takes over, every job runs at once."""
    sched = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        # the watchdog has a thread of its own: busy or stuck poll jobs cannot starve it
        executors={"default": ThreadPoolExecutor(10), "watchdog": ThreadPoolExecutor(1)},
    )
    start = datetime.now(UTC)  # APScheduler's own (real) time; rule timings come from deps.clock
    led(leadership, _watchdog)(deps, playbooks, None)  # before the first poll: a gap while none ran is recorded
    for loaded in playbooks:
        pb = loaded.playbook
        for group in poll_groups(pb, deps.poll_floor):
            sched.add_job(
                led(leadership, _poll),
                IntervalTrigger(seconds=real_seconds(deps, group.every, deps.min_real_interval), timezone=UTC),
                args=[deps, loaded, group],
                id=f"poll:{pb.name}:{group.name}",
                name=f"poll {len(group.signals)} signal(s) of {pb.name} every {group.name}",
                next_run_time=start,
            )
        if pb.rollout is not None:
            every = min(pb.signals[name].every for name in pb.rollout.signals if name in pb.signals)
            sched.add_job(
                led(leadership, _observe_rollout),
                IntervalTrigger(seconds=real_seconds(deps, every, deps.min_real_interval), timezone=UTC),
                args=[deps, loaded],
                id=f"rollout:{pb.name}",
                name=f"read both versions of {pb.name}'s rollout and ask its gate every {every}",
                next_run_time=start,
            )
        if pb.panic_run is not None:
            sched.add_job(
                led(leadership, _panic_run),
                IntervalTrigger(seconds=real_seconds(deps, PANIC_EVERY, TICK_FLOOR), timezone=UTC),
                args=[deps, loaded],
                id=f"panic:{pb.name}",
                name=f"{pb.name}'s daily panic run at {pb.panic_run.at:%H:%M} {pb.panic_run.zone} (and runs missed)",
                next_run_time=start,  # at start-up: runs missed while the bot was down are reported at once
            )
    sched.add_job(
        led(leadership, _watchdog),
        IntervalTrigger(seconds=real_seconds(deps, WATCHDOG_EVERY, WATCHDOG_FLOOR), timezone=UTC),
        args=[deps, list(playbooks), deps.now()],
        id="watchdog",
        name="say when polling falls behind",
        executor="watchdog",
        next_run_time=start + timedelta(seconds=real_seconds(deps, WATCHDOG_EVERY, WATCHDOG_FLOOR)),
    )
    if any(spec.alertmanager is not None for loaded in playbooks for spec in loaded.playbook.signals.values()):
        look = _AlertLook(deps, playbooks)
        sched.add_job(
            led(leadership, look.__call__),
            IntervalTrigger(seconds=real_seconds(deps, PLAN_EVERY, TICK_FLOOR), timezone=UTC),
            id="alertmanager",
            name="poll alertmanager signals as soon as Alertmanager sent something",
            next_run_time=start,
        )
    sched.add_job(
        led(leadership, _plan),
        IntervalTrigger(seconds=real_seconds(deps, PLAN_EVERY, TICK_FLOOR), timezone=UTC),
        args=[deps],
        id="ladder-plan",
        name="wake up when the next step, stage or reminder falls due",
        next_run_time=start,
    )
    sched.add_job(
        led(leadership, _tick),
        IntervalTrigger(seconds=real_seconds(deps, tick_every, TICK_FLOOR), timezone=UTC),
        args=[deps],
        id="ladder-tick",
        name="advance open incidents on their ladders",
        next_run_time=start,
    )
    return sched
