"""The daily panic run in Slack, over real HTTP: the one-line verdict in the playbook's channel (as the fake
Slack received it), and `/rollback ack-panic` acknowledging the pre-launch alert."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rollback_bot.clock import FakeClock
from rollback_bot.flows import panic
from rollback_bot.store.incidents import open_incidents
from tests.flows.conftest import PLAYBOOK, TEMPLATES, answer_ok
from tests.flows.test_panic_run import PANIC
from tests.helpers import FakeHTTP
from tests.slack.conftest import SlackEnv, make_env
from tests.slack.fake_slack import FakeSlack
from tests.slack.test_commands import reply

NINE_IN_PARIS = datetime(2026, 3, 30, 7, 0, 30, tzinfo=UTC)


@pytest.fixture
def panic_slack(tmp_path: Path, fake_slack: FakeSlack, fake_http: FakeHTTP) -> Iterator[SlackEnv]:
    metrics: dict[str, Any] = {"errors": 0.0, "latency": 300.0}
    fake_http.routes["/kpi"] = lambda rec: (200, metrics)
    fake_http.routes["/lock"] = answer_ok
    (tmp_path / "test-release.yaml").write_text(PLAYBOOK.format(url=fake_http.url, templates=TEMPLATES) + PANIC)
    clock = FakeClock(NINE_IN_PARIS)
    env = make_env(f"sqlite:///{tmp_path}/slack.db", tmp_path, fake_slack, fake_http, clock, metrics)
    yield env
    env.server.shutdown()
    env.service.close()
    assert fake_slack.problems == [], "every Block Kit payload must be valid"


def channel_texts(env: SlackEnv) -> list[str]:
    env.settle()
    return [str(c.params["text"]) for c in env.slack.of("chat.postMessage") if c.params.get("channel") == "#ops"]


def test_a_pass_is_one_line_in_the_channel(panic_slack: SlackEnv) -> None:
    env = panic_slack
    panic.run_due(env.deps, env.service.playbooks["test-release"])
    assert channel_texts(env) == [
        "panic run 2026-03-30 09:00 Europe/Paris passed: errors=0 (< 0.01), latency=300 (< 800)"
    ]


def test_a_failure_is_posted_naming_what_drifted_and_acknowledged_with_ack_panic(panic_slack: SlackEnv) -> None:
    env = panic_slack
    env.metrics["errors"] = 0.05
    panic.run_due(env.deps, env.service.playbooks["test-release"])
    [failed] = channel_texts(env)
    assert failed == (
        "panic run 2026-03-30 09:00 Europe/Paris FAILED: errors = 0.05 (needs < 0.01). "
        "Pre-launch alert #1: acknowledge with `/rollback ack-panic 1`"
    )
    with env.deps.store.session() as s:
        assert open_incidents(s) == []  # a pre-launch alert: no incident, no ladder
    assert reply(env, "ack-panic", user="UX") == (
        ":no_entry: Only incident_commander or responder may acknowledge pre-launch alert #1."
    )
    assert reply(env, "ack-panic 1", user="URESP") == "Pre-launch alert #1 (panic run of 2026-03-30) acknowledged"
    assert reply(env, "ack-panic", user="UIC") == (":no_entry: No pre-launch alert is waiting for an acknowledgement")
    assert channel_texts(env)[1:] == [
        "Xavier (UX) may not acknowledge pre-launch alert #1: needs incident_commander or responder",
        "pre-launch alert #1 (panic run of 2026-03-30) acknowledged by Rui (URESP) as responder",
    ]


def test_a_failure_mentions_who_may_acknowledge_and_its_button_acknowledges(panic_slack: SlackEnv) -> None:
    env = panic_slack
    env.metrics["errors"] = 0.05
    panic.run_due(env.deps, env.service.playbooks["test-release"])
    env.settle()
    [post] = [c for c in env.slack.of("chat.postMessage") if c.params.get("channel") == "#ops"]
    shown = post.text_of_blocks()
    assert "FAILED: errors = 0.05 (needs &lt; 0.01)" in shown
    assert "<@UIC> <@URESP>" in shown  # incident_commander and responder (SONCALL), the roles that acknowledge
    [button] = post.buttons()
    assert (button["action_id"], button["text"]["text"], button["value"]) == ("panic_ack", "Acknowledge", '{"p":1}')
    assert env.click("panic_ack", "UX", value={"p": 1}).status_code == 200
    denied = env.wait_for(lambda: env.slack.ephemerals("UX"))[0].params["text"]
    assert denied == ":no_entry: Only incident_commander or responder may acknowledge pre-launch alert #1."
    env.click("panic_ack", "URESP", value={"p": 1})
    done = env.wait_for(lambda: env.slack.ephemerals("URESP"))[0].params["text"]
    assert done == ":white_check_mark: Pre-launch alert #1 (panic run of 2026-03-30) acknowledged"
    env.click("panic_ack", "UIC", value={"p": 1})
    again = env.wait_for(lambda: env.slack.ephemerals("UIC"))[0].params["text"]
    assert again.startswith(":no_entry: Pre-launch alert #1 was already acknowledged by URESP at ")
    env.click("panic_ack", "UIC", value={"p": "1; drop"})
    bad = env.wait_for(lambda: len(env.slack.ephemerals("UIC")) > 1 and env.slack.ephemerals("UIC"))[1]
    assert bad.params["text"] == ":no_entry: This button carries no pre-launch alert; use /rollback status"


def test_status_lists_the_pre_launch_alerts_waiting(panic_slack: SlackEnv) -> None:
    env = panic_slack
    env.metrics["errors"] = 0.05
    panic.run_due(env.deps, env.service.playbooks["test-release"])
    shown = reply(env, "status", user="URESP")
    assert "1 pre-launch alert(s) waiting for an acknowledgement" in shown
    assert "#1* `test-release` panic run of 2026-03-30 failed: errors = 0.05 (needs &lt; 0.01); acknowledge: " in shown
    assert "not shown to you" in reply(env, "status", user="UX")  # no role: the alert is counted, not shown
    reply(env, "ack-panic 1", user="URESP")
    assert reply(env, "status", user="URESP") == ":white_check_mark: No open incidents, no rollouts under way."
