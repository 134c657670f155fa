"""Playbook-level events (no incident open) reach the playbook's channel, from the very first poll on."""

from __future__ import annotations

from tests.slack.conftest import SlackEnv


def test_a_signal_lost_at_the_first_polls_is_posted_to_the_channel(slack_env: SlackEnv) -> None:
    env = slack_env
    env.http.routes["/kpi"] = (500, {"error": "down"})
    for _ in range(2):  # lost_after: 2
        env.poll()
        env.clock.advance(30)
    env.settle()
    posts = [c for c in env.slack.of("chat.postMessage") if c.params.get("channel") == "#ops"]
    assert any("signal lost: errors" in c.params.get("text", "") for c in posts), [c.params for c in posts]
    assert sum("signal lost: errors" in c.params.get("text", "") for c in posts) == 1
