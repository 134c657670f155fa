"""The alert: one parent message per incident, kept current with chat.update; details in the thread."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from rollback_bot import flows
from rollback_bot.clock import FakeClock
from tests.flows.conftest import PLAYBOOK, TEMPLATES
from tests.helpers import FakeHTTP
from tests.slack.conftest import SlackEnv, make_env
from tests.slack.fake_slack import FakeSlack


def test_one_parent_message_with_step_watch_and_only_valid_buttons(slack_env: SlackEnv) -> None:
    env, slack = slack_env, slack_env.slack
    env.poll()
    env.settle()
    assert slack.parents() == []
    env.open_incident()
    env.settle()
    [parent] = slack.parents()
    assert parent.params["channel"] == "#ops"
    text = parent.text_of_blocks()
    assert "CRITICAL \u00b7 svc \u00b7 incident #1" in text
    assert "*Open, not acknowledged* (acknowledge by 09:15 UTC)" in text
    assert "*What fired:* `fatal` errors &gt; 0" in text and "`errors` = *0.05* \u00b7 since 09:00 UTC" in text
    assert "*Step 1/3: Flag* (0h-1h, until 10:00 UTC)" in text and "Next: *Revert* at 10:00 UTC" in text
    assert ":x: `errors == 0`: now *0.05*" in text
    assert ":white_check_mark: `ack_time &lt; 15`: now *0*" in text
    assert [b["text"]["text"] for b in parent.buttons()] == ["Acknowledge", "Approve: Lock", "Hold", "Resolve"]
    assert parent.params["text"].startswith("[CRITICAL] svc incident #1 (open): fatal, step 1/3 Flag")
    thread = [c.params["text"] for c in slack.thread()]
    assert thread[0] == "fatal fired (critical): errors > 0 [errors=0.05]"  # fallback text is plain
    assert thread[1] == "step 1/3 entered: Flag (0h-1h)"
    step = slack.thread()[1].text_of_blocks()
    assert "*Draft: internal-alert* (ready to send)" in step and "incident #1 (critical)" in step
    assert all(c.params["thread_ts"] == "1001.000100" for c in slack.thread())
    # the same breach again: no new message of any kind
    before = len(slack.calls)
    env.clock.advance(30)
    env.poll()
    env.settle()
    assert len(slack.parents()) == 1
    assert [c.method for c in slack.calls[before:] if c.method.startswith("chat.")] == []


def test_state_changes_update_the_parent_never_a_new_message(slack_env: SlackEnv) -> None:
    env, slack = slack_env, slack_env.slack
    env.open_incident()
    env.settle()
    env.metrics["latency"] = 950.0
    for _ in range(5):
        env.clock.advance(30)
        env.poll()
    env.settle()
    assert len(slack.parents()) == 1
    assert "*Also fired:* `slow`" in slack.last_alert().text_of_blocks()
    env.clock.advance(timedelta(hours=1))
    flows.tick(env.deps)
    env.settle()
    alert = slack.last_alert()
    assert alert.method == "chat.update" and alert.params["ts"] == "1001.000100"
    assert "*Step 2/3: Revert* (1h-2h, until 11:00 UTC)" in alert.text_of_blocks()
    assert [b["text"]["text"] for b in alert.buttons()] == [
        "Acknowledge",
        "Approve: Lock",
        "Approve: Roll back",
        "Hold",
        "Resolve",
    ]
    assert "step 2/3 entered: Revert (1h-2h)" in [c.params["text"] for c in slack.thread()]
    assert len(slack.parents()) == 1


def test_reminders_mention_the_people_in_the_needed_roles(slack_env: SlackEnv) -> None:
    env, slack = slack_env, slack_env.slack
    env.open_incident()
    env.clock.advance(timedelta(minutes=15))
    flows.tick(env.deps)
    env.settle()
    reminder = next(c for c in slack.thread() if c.params["text"].startswith("reminder:"))
    assert "*Reminder:* incident #1 is still unacknowledged after 15m" in reminder.text_of_blocks()
    assert "<@UIC> <@URESP>" in reminder.text_of_blocks()  # incident_commander, and responder via user group
    flows.tick(env.deps)
    env.settle()
    assert sum(c.params["text"].startswith("reminder:") for c in slack.thread()) == 1


def test_a_slack_outage_loses_nothing(slack_env: SlackEnv) -> None:
    env, slack = slack_env, slack_env.slack
    slack.down = True
    env.open_incident()
    env.clock.advance(timedelta(minutes=20))
    flows.tick(env.deps)  # a reminder while Slack is down
    env.settle()
    assert slack.parents() == [] and len(slack.attempts("chat.postMessage")) >= 1  # it tried, and failed
    [incident] = flows.open_incidents(env.deps)
    assert incident.slack_ts is None and incident.slack_cursor == 0
    slack.down = False
    env.service.sync.sync_all()
    assert len(slack.parents()) == 1
    texts = [c.params["text"] for c in slack.thread()]
    assert texts[0].startswith("fatal fired") and texts[1].startswith("step 1/3 entered")
    assert any(t.startswith("reminder:") for t in texts)
    env.service.sync.sync_all()
    assert len(slack.thread()) == len(texts)  # nothing posted twice


def test_rate_limited_slack_is_retried_after_retry_after(slack_env: SlackEnv) -> None:
    env, slack = slack_env, slack_env.slack
    slack.fail["chat.postMessage"] = [(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})]
    env.open_incident()
    env.settle()
    assert len(slack.attempts("chat.postMessage")) >= 2 and len(slack.parents()) == 1  # refused, then retried
    assert flows.open_incidents(env.deps)[0].slack_ts == "1001.000100"


def test_display_fields_rounded_values_and_a_resolved_ladder(
    tmp_path: Path, fake_slack: FakeSlack, fake_http: FakeHTTP, clock: FakeClock
) -> None:
    """A playbook's description, a trigger's description and a signal's label are shown in the alert and the
    thread; values are rounded as in the watch table; once resolved, the alert says where the ladder stood."""
    text = PLAYBOOK.format(url=fake_http.url, templates=TEMPLATES)
    text = text.replace('channel: "#ops"\n', 'channel: "#ops"\ndescription: Support copilot v42, canary\n')
    text = text.replace("json: errors, every: 30s", "json: errors, label: Fatal error rate, every: 30s")
    text = text.replace(
        "{when: errors > 0, severity: critical}", "{when: errors > 0, severity: critical, description: Answers fail}"
    )
    (tmp_path / "test-release.yaml").write_text(text)
    metrics: dict[str, Any] = {"errors": 0.01414158088658034, "latency": 300.0}
    fake_http.routes["/kpi"] = lambda rec: (200, metrics)
    env = make_env(f"sqlite:///{tmp_path}/slack.db", tmp_path, fake_slack, fake_http, clock, metrics)
    try:
        env.poll()
        env.settle()
        alert = fake_slack.last_alert().text_of_blocks()
        assert "Support copilot v42, canary" in alert
        assert "*What fired:* `fatal` Answers fail: errors &gt; 0" in alert
        assert "`errors` (Fatal error rate) = *0.01414*" in alert and "0.014141" not in alert
        assert ":x: `errors == 0` (Fatal error rate): now *0.01414*" in alert
        step = fake_slack.thread()[1].text_of_blocks()
        assert "`errors == 0` (Fatal error rate): now *0.01414*" in step
        assert "Next: Lock (needs incident_commander)" in step  # the internal-alert draft
        assert flows.resolve(env.deps, 1, "UIC").ok
        env.settle()
        alert = fake_slack.last_alert().text_of_blocks()
        assert "*Resolved during step 1/3: Flag*" in alert and "resolve when satisfied" not in alert
    finally:
        env.server.shutdown()
        env.service.close()
    assert fake_slack.problems == []
