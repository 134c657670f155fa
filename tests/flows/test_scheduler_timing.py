"""The real scheduler keeps the playbook's times exactly: an action's next stage starts when `stage_every` has
passed, not at the next ladder tick (here an hour away)."""

from __future__ import annotations

import time
from datetime import timedelta
from itertools import pairwise
from typing import Any

from rollback_bot import flows
from rollback_bot.clock import ScaledClock
from rollback_bot.flows import Deps
from rollback_bot.playbook import load_playbook
from rollback_bot.scheduler import build_scheduler
from tests.flows.conftest import Env
from tests.flows.test_scheduler_watchdog import wait_for
from tests.helpers import loopback_session

SPEED = 60.0  # a minute of clock time is a second of real time


def test_the_next_stage_starts_when_stage_every_has_passed(env: Env) -> None:
    text = env.path.read_text()
    text = text.replace("        requires: [incident_commander]\n", "        requires: [incident_commander]\n"
                        "        stages: [10, 50, 100]\n        stage_every: 2m\n", 1)  # fmt: skip
    env.path.write_text(text)
    loaded = load_playbook(env.path)
    sent: list[tuple[float, Any]] = []

    def stage(rec: Any) -> tuple[int, Any]:
        sent.append((time.monotonic(), rec.body))
        return 200, {"ok": True}

    env.http.routes["/lock"] = stage
    env.metrics["errors"] = 0.07
    clock = ScaledClock(SPEED)
    deps = Deps(env.deps.store, clock, loopback_session(), env.deps.directory, env.notifier)
    sched = build_scheduler(deps, [loaded], tick_every=timedelta(hours=1))  # the tick alone would be 60 s late
    sched.start()
    try:
        wait_for(lambda: bool(env.incidents()), 15, "the incident")
        incident = env.incidents()[0]
        assert incident.id is not None
        assert flows.approve(deps, incident.id, "lock", "UIC").ok  # stage 10% at once
        wait_for(lambda: len(sent) == 3, 20, "the three stages")
    finally:
        sched.shutdown(wait=True)
    gaps = [b[0] - a[0] for a, b in pairwise(sent)]
    assert all(120 / SPEED - 0.2 <= g <= 120 / SPEED + 1.5 for g in gaps), gaps  # 2m of clock time = 2 s each
