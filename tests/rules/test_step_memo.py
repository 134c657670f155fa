"""`step_triggers` with a Memo decides exactly as without: at every evaluation, for every trigger."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from rollback_bot.playbook import parse_playbook
from rollback_bot.rules.evaluate import TriggerState
from rollback_bot.rules.readings import Reading
from rollback_bot.rules.step import Memo, step_triggers

PLAYBOOK = """\
name: memo
service: svc
channel: "#ops"
roles: {incident_commander: {users: [U1]}, responder: {users: [U2]}}
signals:
  a: {http: "http://x.invalid/", json: a, every: 30s}
  b: {http: "http://x.invalid/", json: b, every: 1m}
triggers:
  plain: {when: a > 5}
  held: {when: a > 5, for: 2m, keep_firing_for: 1m}
  count: {when: b > 5, breaches: 2 of 3}
  both: {all: [a > 5, b > 5], fail_fast: b > 9}
  blind: {when: b > 5, no_data: breach, no_data_for: 2m}
  gate: {kpi: {a: -0.1, b: -0.1}, below: -0.8, hold_below: -0.5}
  jump: {when: a jumps 100% within 5m}
ladder:
  - {name: Flag, window: 0h-1h}
"""
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("seed", range(6))
def test_memo_changes_no_decision(seed: int) -> None:
    pb = parse_playbook(PLAYBOOK).playbook
    rnd = random.Random(seed)
    latest: dict[str, Reading] = {}
    history: dict[str, list[Reading]] = {"a": []}
    plain: dict[str, TriggerState] = {}
    memoed: dict[str, TriggerState] = {}
    memo = Memo(pb)
    for k in range(600):
        now = T0 + timedelta(seconds=30 * k)
        if rnd.random() < 0.3:  # a new reading now and then; otherwise the same object stays
            name = rnd.choice("ab")
            value = rnd.choice([0.0, 1.0, 6.0, 10.0]) if rnd.random() > 0.1 else None
            r = Reading.of(name, now, value) if value is not None else Reading.nodata(name, now, "empty")
            latest[name] = r
            if name == "a":
                history["a"].append(r)
        if rnd.random() < 0.05:
            latest.pop(rnd.choice("ab"), None)
        one = step_triggers(pb, plain, latest, history, now)
        two = step_triggers(pb, memoed, latest, history, now, memo)
        assert one == two, now
        plain = {d.trigger: s for d, s in one}
        memoed = {d.trigger: s for d, s in two}
