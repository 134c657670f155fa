"""The real scheduler: a poll that hangs is reported by the watchdog (its own thread), then the recovery."""

from __future__ import annotations

import time
from collections.abc import Callable

from rollback_bot.clock import ScaledClock
from rollback_bot.flows import Deps
from rollback_bot.scheduler import build_scheduler
from tests.flows.conftest import Env
from tests.helpers import loopback_session


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_hung_poll_is_reported_by_the_watchdog_and_its_end_too(env: Env) -> None:
    clock = ScaledClock(60)  # 30s polls every 0.5 s of real time
    deps = Deps(env.deps.store, clock, loopback_session(), env.deps.directory, env.notifier)
    sched = build_scheduler(deps, [env.loaded])
    sched.start()
    try:
        wait_for(lambda: env.fake_http_reads() > 0, 10, "the first poll")
        with deps.lock("test-release"):  # evaluation is stuck: every poll job blocks here
            wait_for(lambda: "polling.behind" in env.notifier.kinds(), 15, "'polling behind'")
        wait_for(lambda: "polling.restored" in env.notifier.kinds(), 15, "'polling restored'")
    finally:
        sched.shutdown(wait=True)
    kinds = env.notifier.kinds()
    assert kinds.count("polling.behind") == 1 and kinds.count("polling.restored") == 1
    behind = next(e for _, e in env.notifier.events if e.kind == "polling.behind")
    assert "has not finished" in behind.summary
