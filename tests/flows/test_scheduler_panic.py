"""The real scheduler on a compressed clock: the panic run fires at 09:00 in its zone, and a scheduler started
after the bot was down over the run time reports each day missed at start-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rollback_bot.clock import ScaledClock
from rollback_bot.flows import Deps
from rollback_bot.playbook import load_playbook
from rollback_bot.scheduler import build_scheduler
from tests.flows.conftest import Env
from tests.flows.test_panic_run import PANIC
from tests.flows.test_scheduler_watchdog import wait_for
from tests.helpers import loopback_session

NINE_IN_PARIS = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)


def run_for(env: Env, clock: ScaledClock, until: str, count: int = 1) -> list[str]:
    deps = Deps(env.deps.store, clock, loopback_session(), env.deps.directory, env.notifier, min_real_interval=0.5)
    sched = build_scheduler(deps, [env.loaded])
    sched.start()
    try:
        wait_for(lambda: env.notifier.kinds().count(until) >= count, 15, until)
    finally:
        sched.shutdown(wait=True)
    return [e.summary for _, e in env.notifier.events if e.kind.startswith("panic.")]


def test_the_panic_run_fires_at_its_time_and_runs_missed_while_down_are_reported(env: Env) -> None:
    env.path.write_text(env.path.read_text() + PANIC)
    env.loaded = load_playbook(env.path)
    # 600x: a clock minute is 0.1 s; the bot starts at 08:58 in Paris
    summaries = run_for(env, ScaledClock(600, NINE_IN_PARIS - timedelta(minutes=2)), "panic.passed")
    assert summaries == ["panic run 2026-03-30 09:00 Europe/Paris passed: errors=0 (< 0.01), latency=300 (< 800)"]
    # down until 1 April, 11:00 in Paris: both runs missed are reported as the scheduler starts
    env.notifier.events.clear()
    summaries = run_for(env, ScaledClock(600, datetime(2026, 4, 1, 9, 0, tzinfo=UTC)), "panic.missed", count=2)
    assert [s.split(":")[0] for s in summaries] == [
        "panic run of 2026-03-31 09",
        "panic run of 2026-04-01 09",
    ]
