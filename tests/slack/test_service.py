"""The service around the app: restarts mid-incident, health and metrics, settings, message limits."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rollback_bot import flows
from rollback_bot.config import ConfigError, load_settings
from rollback_bot.flows.views import incident_view
from rollback_bot.playbook import parse_playbook
from rollback_bot.rules.polling import poll_groups
from rollback_bot.slack import blocks
from rollback_bot.slack.limits import Message
from rollback_bot.store import Store
from tests.flows.conftest import answer_ok
from tests.helpers import FakeHTTP, loopback_session
from tests.slack.conftest import SlackEnv, make_env
from tests.slack.fake_slack import FakeSlack, block_problems


def test_restart_mid_incident_keeps_the_same_message_and_buttons_keep_working(
    store: Store, tmp_path: Path, fake_slack: FakeSlack, fake_http: FakeHTTP, clock: Any
) -> None:
    metrics: dict[str, Any] = {"errors": 0.05, "latency": 300.0}
    fake_http.routes["/kpi"] = lambda rec: (200, metrics)
    fake_http.routes["/rollback"] = answer_ok
    first = make_env(store.url, tmp_path, fake_slack, fake_http, clock, metrics)
    first.poll()
    first.settle()
    first.clock.advance(timedelta(hours=1))
    flows.tick(first.deps)
    first.poll()
    first.click("approve:rollback", "UAPP1")
    first.wait_for(lambda: fake_slack.ephemerals("UAPP1"))
    first.settle()
    first.server.shutdown()
    first.service.close()
    posted = len(fake_slack.thread())

    second = make_env(store.url, tmp_path, fake_slack, fake_http, clock, metrics)
    try:
        second.service.sync.sync_all()
        flows.tick(second.deps)
        second.settle()
        assert len(fake_slack.parents()) == 1  # no second alert after the restart
        assert len(fake_slack.thread()) == posted  # and no step or event announced again
        second.click("approve:rollback", "USAFE")
        second.wait_for(lambda: fake_slack.ephemerals("USAFE"))
        second.wait_for(lambda: fake_http.posts("/rollback"))
        second.settle()
        assert fake_slack.last_alert().params["ts"] == fake_slack.parents()[0].params.get("ts", "1001.000100")
        assert "stages: :white_check_mark: 10%" in fake_slack.last_alert().text_of_blocks()
    finally:
        second.server.shutdown()
        second.service.close()
    assert fake_slack.problems == []


def test_healthz_and_metrics(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    session = loopback_session()
    loaded = env.service.playbooks["test-release"]
    [group] = poll_groups(loaded.playbook)
    flows.poll(env.deps, loaded, list(group.signals), group=group)  # as the scheduler polls
    health = session.get(f"{env.url}/healthz", timeout=5)
    assert health.status_code == 200
    assert health.json() == {"ok": True, "database": "ok", "polling": "ok", "clicks": "ok"}
    assert (
        'rollback_bot_polling_behind{group="30s",playbook="test-release"} 0.0'
        in session.get(f"{env.url}/metrics", timeout=5).text
    )
    env.clock.advance(timedelta(minutes=2))  # nobody polls for four intervals
    health = session.get(f"{env.url}/healthz", timeout=5)
    assert health.status_code == 503
    assert health.json()["polling"] == "behind"
    assert health.json()["behind"] == ["3 signal(s) of test-release polled every 30s: no complete poll for 2m"]
    metrics = session.get(f"{env.url}/metrics", timeout=5).text
    assert 'rollback_bot_poll_age_seconds{group="30s",playbook="test-release"} 120.0' in metrics
    assert 'rollback_bot_polling_behind{group="30s",playbook="test-release"} 1.0' in metrics
    assert env.slash("help").status_code == 200
    metrics = session.get(f"{env.url}/metrics", timeout=5).text
    assert 'rollback_bot_polls_total{playbook="test-release",status="ok"}' in metrics
    assert 'rollback_bot_incidents_opened_total{playbook="test-release",severity="critical"}' in metrics
    assert 'rollback_bot_http_request_seconds_count{path="/slack/events",status="200"}' in metrics
    assert session.get(f"{env.url}/nope", timeout=5).status_code == 404


def test_healthz_says_when_clicks_wait_with_nobody_to_work_them_off(slack_env: SlackEnv) -> None:
    """A web-only process whose scheduler process is gone: its clicks wait, and /healthz says so."""
    env = slack_env
    env.open_incident()
    session = loopback_session()
    env.service.desk.here = False  # as in a gunicorn worker
    assert env.click("ack", "URESP").status_code == 200
    env.clock.advance(timedelta(seconds=31))
    health = session.get(f"{env.url}/healthz", timeout=5)
    assert health.status_code == 503
    assert health.json()["clicks"] == (
        "1 click(s) not worked off, the oldest for 31 s: is the scheduler process running?"
    )
    assert "rollback_bot_clicks_waiting 1.0" in session.get(f"{env.url}/metrics", timeout=5).text
    assert env.service.desk.sweep(timedelta(seconds=10)) == 1  # as a web process's watchdog does
    env.service.drain()
    assert env.slack.ephemerals("URESP")[0].params["text"] == ":white_check_mark: Acknowledged incident #1"
    assert session.get(f"{env.url}/healthz", timeout=5).json()["clicks"] == "ok"


def test_slack_errors_are_counted(slack_env: SlackEnv) -> None:
    env = slack_env
    env.slack.down = True
    env.open_incident()
    env.settle()
    metrics = loopback_session().get(f"{env.url}/metrics", timeout=5).text
    assert 'rollback_bot_slack_api_errors_total{method="chat.postMessage"}' in metrics


GOOD = {"SLACK_BOT_TOKEN": "xoxb-1234-5678-abcdefghijkl", "SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SLACK_SIGNING_SECRET": GOOD["SLACK_SIGNING_SECRET"]}, "SLACK_BOT_TOKEN is not set"),
        ({**GOOD, "SLACK_BOT_TOKEN": "xoxb-your-bot-token"}, "SLACK_BOT_TOKEN must be the bot token (xoxb-...)"),
        ({**GOOD, "SLACK_BOT_TOKEN": "xoxp-1234-5678"}, "SLACK_BOT_TOKEN must be the bot token"),
        ({**GOOD, "SLACK_SIGNING_SECRET": "changeme"}, "SLACK_SIGNING_SECRET must be the signing secret"),
        ({"SLACK_BOT_TOKEN": GOOD["SLACK_BOT_TOKEN"]}, "set SLACK_SIGNING_SECRET for HTTP mode"),
        ({**GOOD, "SLACK_APP_TOKEN": "xapp-..."}, "SLACK_APP_TOKEN must be an app-level token"),
        ({**GOOD, "SLACK_API_URL": "slack.local"}, "SLACK_API_URL must be an http(s) URL"),
        ({**GOOD, "READINGS_RETENTION": "30"}, "READINGS_RETENTION bad duration '30'"),
        ({**GOOD, "ROLLBACK_PORT": "99999"}, "ROLLBACK_PORT=99999: must be at most 65535"),
        ({**GOOD, "ROLLBACK_PORT": "http"}, "ROLLBACK_PORT=http: expected a whole number"),
    ],
)
def test_settings_refuse_missing_and_placeholder_values(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "SLACK_API_URL",
        "READINGS_RETENTION",
        "ROLLBACK_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert message in str(exc.value) and str(exc.value).startswith("cannot start: ")


def test_serve_refuses_to_start_with_a_clear_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env["SLACK_BOT_TOKEN"] = "xoxb-your-token-here"
    out = subprocess.run(
        [sys.executable, "-m", "rollback_bot.cli", "serve"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 2
    assert "cannot start: SLACK_BOT_TOKEN must be the bot token" in out.stderr
    assert "SLACK_SIGNING_SECRET for HTTP mode" in out.stderr and "(see bot/env.example)" in out.stderr


def test_messages_stay_within_slack_limits_whatever_the_data(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    for i in range(60):
        flows.add_note(env.deps, 1, "URESP", f"note {i} " + "x" * 700)
    huge = "y" * 5000
    flows.add_note(env.deps, 1, "URESP", huge)
    env.settle()
    view = incident_view(env.deps, 1)
    assert view is not None
    from rollback_bot.store.audit import timeline

    with env.deps.store.session() as s:
        events = timeline(s, 1)
    for message in (blocks.alert(view), blocks.status([view] * 30), *(blocks.thread_event(e) for e in events)):
        payload = message.payload()
        assert block_problems(payload["blocks"]) == [], message.text
        assert len(payload["blocks"]) <= 50
    assert env.slack.problems == []  # the thread replies, the huge note included, were all accepted


def test_a_playbook_with_many_long_actions_still_renders_valid_buttons() -> None:
    roles = "roles: {r: {users: [U1]}}\n"
    actions = "".join(
        f"      - {{id: a{i}, label: '{'L' * 60}', requires: [r], webhook: {{url: 'http://x/{i}'}}}}\n"
        for i in range(30)
    )
    text = (
        "name: big\nservice: s\nchannel: '#c'\nacknowledge: {requires: [r]}\nresolve: {requires: [r]}\n"
        "hold: {requires: [r]}\n" + roles + "signals: {x: {http: 'http://x', json: x}}\n"
        "triggers: {t: {when: x > 1}}\nladder:\n  - name: S\n    window: 0h-1h\n    actions:\n" + actions
    )
    pb = parse_playbook(text).playbook
    from rollback_bot.flows.views import ActionView

    views = [ActionView(a, 0, (), ("r",), ((100.0, "pending"),)) for a in pb.ladder[0].actions]
    message = Message("x", blocks.buttons(_FakeView(pb, views)))  # type: ignore[arg-type]
    payload = message.payload()
    assert block_problems(payload["blocks"]) == []
    ids = [e["action_id"] for b in payload["blocks"] for e in b["elements"]]
    assert len(ids) == len(set(ids)) == 33  # 30 approvals, acknowledge, hold, resolve


class _FakeView:
    def __init__(self, pb: Any, actions: list[Any]) -> None:
        from rollback_bot.store import Incident

        self.playbook, self.actions, self.is_open = pb, actions, True
        self.incident = Incident(
            id=1,
            playbook="big",
            playbook_version="v",
            playbook_path="p",
            playbook_text="",
            service="s",
            channel="#c",
            severity="major",
            trigger="t",
            summary="s",
            opened_at=__import__("datetime").datetime.now(__import__("datetime").UTC),
        )
