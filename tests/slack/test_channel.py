"""Playbook-level events (no incident open) reach the playbook's channel, from the very first poll on."""

from __future__ import annotations

import time
from typing import Any

import pytest

from rollback_bot import bootstrap, flows
from rollback_bot.rules.polling import poll_groups
from tests.slack.conftest import SlackEnv


def channel_posts(env: SlackEnv) -> list[Any]:
    return [c for c in env.slack.of("chat.postMessage") if c.params.get("channel") == "#ops"]


def test_a_signal_lost_at_the_first_polls_is_posted_to_the_channel(slack_env: SlackEnv) -> None:
    env = slack_env
    env.http.routes["/kpi"] = (500, {"error": "down"})
    for _ in range(2):  # lost_after: 2
        env.poll()
        env.clock.advance(30)
    env.settle()
    posts = channel_posts(env)
    assert any("signal lost: errors" in c.params.get("text", "") for c in posts), [c.params for c in posts]
    assert sum("signal lost: errors" in c.params.get("text", "") for c in posts) == 1


def test_a_dead_scheduler_is_announced_in_the_channel_by_the_web_process(
    slack_env: SlackEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = slack_env
    monkeypatch.setattr(bootstrap, "WATCHDOG_SECONDS", 0.05)
    loaded = env.service.playbooks["test-release"]
    [group] = poll_groups(loaded.playbook)
    flows.poll(env.deps, loaded, list(group.signals), group=group)  # the scheduler polled once ...
    env.service.start_watchdog()
    env.clock.advance(120)  # ... then died
    env.wait_for(lambda: any("polling behind" in c.params.get("text", "") for c in channel_posts(env)))
    env.clock.advance(5)
    time.sleep(0.3)  # further watchdog runs
    env.settle()
    assert sum("polling behind" in c.params.get("text", "") for c in channel_posts(env)) == 1
