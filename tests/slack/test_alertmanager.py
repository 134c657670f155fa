"""POST /alertmanager on the bot's real HTTP app: bearer token, version 4 payloads, durable before the 200,
replays doubling nothing; a firing alert opens the incident through the same triggers, ladder and timeline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr
from sqlalchemy import text
from sqlmodel import select

from rollback_bot import flows
from rollback_bot.clock import FakeClock
from rollback_bot.config import ConfigError, Settings, load_settings
from rollback_bot.directory import StaticDirectory
from rollback_bot.flows import Deps
from rollback_bot.notify import RecordingNotifier
from rollback_bot.playbook import load_playbook
from rollback_bot.scheduler import build_scheduler
from rollback_bot.store import Store
from rollback_bot.store.audit import playbook_events, timeline
from rollback_bot.store.incidents import open_incident
from rollback_bot.store.models import AlertRow
from tests.flows.conftest import PLAYBOOK
from tests.helpers import FakeHTTP, loopback_session
from tests.slack.conftest import SlackEnv, make_env
from tests.slack.fake_slack import FakeSlack

AM_TOKEN = "3f9c2a7e51b04d8c9e6f1a2b3c4d5e6f"
AM_PLAYBOOK = PLAYBOOK.replace(
    "  ack_time: {{builtin: ack_minutes, every: 30s}}\n",
    "  ack_time: {{builtin: ack_minutes, every: 30s}}\n"
    "  model_errors: {{alertmanager: {{match: {{alertname: ModelErrorRate, service: svc}}}}, every: 30s}}\n",
).replace(
    "triggers:\n",
    "triggers:\n  alerted: {{when: model_errors > 0, severity: critical, description: Alertmanager says so}}\n",
)


def am_env(tmp_path: Path, slack: FakeSlack, http: FakeHTTP, clock: FakeClock, store_url: str) -> SlackEnv:
    from tests.flows.conftest import TEMPLATES

    metrics: dict[str, Any] = {"errors": 0.0, "latency": 300.0}
    http.routes["/kpi"] = lambda rec: (200, metrics)
    (tmp_path / "test-release.yaml").write_text(AM_PLAYBOOK.format(url=http.url, templates=TEMPLATES))
    return make_env(store_url, tmp_path, slack, http, clock, metrics, alertmanager_token=SecretStr(AM_TOKEN))


@pytest.fixture
def env(tmp_path: Path, fake_slack: FakeSlack, fake_http: FakeHTTP, clock: FakeClock) -> Iterator[SlackEnv]:
    e = am_env(tmp_path, fake_slack, fake_http, clock, f"sqlite:///{tmp_path}/am.db")
    yield e
    e.server.shutdown()
    e.service.close()
    assert fake_slack.problems == []


def alert(status: str = "firing", **kw: Any) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "ModelErrorRate", "service": "svc", "severity": "page"},
        "annotations": {"summary": "Error rate above 5%"},
        "startsAt": "2026-03-01T08:59:00Z",
        "endsAt": "2026-03-01T09:04:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=errors",
        "fingerprint": "c0ffee",
        **kw,
    }


def payload(*alerts: dict[str, Any], status: str = "firing") -> bytes:
    doc = {
        "version": "4",
        "groupKey": '{}:{alertname="ModelErrorRate"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "rollback-bot",
        "groupLabels": {"alertname": "ModelErrorRate"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }
    return json.dumps(doc).encode()


def send(env: SlackEnv, body: bytes, token: str | None = AM_TOKEN, **headers: str) -> requests.Response:
    if token is not None:
        headers.setdefault("Authorization", f"Bearer {token}")
    headers.setdefault("Content-Type", "application/json")
    return loopback_session().post(f"{env.url}/alertmanager", data=body, headers=headers, timeout=10)


def kinds(env: SlackEnv) -> list[str]:
    with env.deps.store.session() as s:
        return [e.kind for e in playbook_events(s, playbook="test-release")]


def test_a_firing_alert_opens_the_incident_and_a_resolved_one_reads_healthy(env: SlackEnv) -> None:
    env.poll()
    assert env.deps.polled["test-release"]["model_errors"].detail.startswith("no alert matching")
    answer = send(env, payload(alert()))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"stored": 1, "signals": ["test-release/model_errors"]}
    env.clock.advance(30)
    env.poll()
    env.settle()
    [parent] = env.slack.parents()
    assert "CRITICAL" in parent.text_of_blocks() and "`model_errors` = *1" in parent.text_of_blocks()
    thread = [c.params["text"] for c in env.slack.thread()]
    fired = next(t for t in thread if t.startswith("alerted fired"))
    assert fired == (
        "alerted fired (critical): model_errors > 0 [model_errors=1]; alert "
        'ModelErrorRate{service="svc", severity="page"}: Error rate above 5% '
        "(http://prometheus:9090/graph?g0.expr=errors)"
    )
    with env.deps.store.session() as s:
        events = playbook_events(s, playbook="test-release")
    firing = next(e for e in events if e.kind == "alert.firing")
    assert firing.details["alerts"][0]["labels"]["severity"] == "page"
    assert firing.details["alerts"][0]["generator_url"] == "http://prometheus:9090/graph?g0.expr=errors"
    opened = next(e for e in events if e.kind == "signal.fired")
    assert opened.details["alerts"]["model_errors"][0]["annotations"] == {"summary": "Error rate above 5%"}
    # held between webhooks (Alertmanager re-sends every repeat_interval): still firing, nothing new recorded
    env.clock.advance(3600)
    env.poll()
    assert env.deps.polled["test-release"]["model_errors"].value == 1.0
    assert kinds(env).count("alert.firing") == 1
    # resolved: healthy, the trigger clears
    assert send(env, payload(alert("resolved"), status="resolved")).status_code == 200
    env.clock.advance(30)
    env.poll()
    env.settle()
    reading = env.deps.polled["test-release"]["model_errors"]
    assert (reading.value, reading.detail[:31]) == (0.0, "resolved at 09:04:00 UTC: Model")
    assert kinds(env).count("alert.resolved") == 1 and "signal.cleared" in kinds(env)
    # a late retry of the firing delivery does not move the alert back
    assert send(env, payload(alert())).status_code == 200
    env.clock.advance(30)
    env.poll()
    assert env.deps.polled["test-release"]["model_errors"].value == 0.0


def test_a_replayed_payload_doubles_nothing(env: SlackEnv) -> None:
    for _ in range(3):
        assert send(env, payload(alert(), alert(fingerprint="d00d"))).status_code == 200
        env.clock.advance(30)
        env.poll()
    with env.deps.store.session() as s:
        assert len(list(s.exec(select(AlertRow)))) == 2
    assert kinds(env).count("alert.firing") == 1
    assert env.deps.polled["test-release"]["model_errors"].value == 2.0
    assert kinds(env).count("incident.opened") == 1


def test_an_alert_matching_no_signal_is_stored_and_said(env: SlackEnv) -> None:
    other = alert(labels={"alertname": "DiskFull"}, fingerprint="e")
    answer = send(env, payload(other))
    assert answer.status_code == 200 and answer.json() == {"stored": 1, "signals": []}
    metrics = loopback_session().get(f"{env.url}/metrics", timeout=5).text
    assert 'rollback_bot_alertmanager_alerts_total{matched="false",status="firing"}' in metrics
    env.poll()
    assert env.deps.polled["test-release"]["model_errors"].status == "nodata"


@pytest.mark.parametrize(
    ("headers", "token"),
    [({}, None), ({}, "wrong-token-wrong-token"), ({"Authorization": f"Basic {AM_TOKEN}"}, None)],
)
def test_without_the_right_bearer_token_nothing_is_stored(
    env: SlackEnv, headers: dict[str, str], token: str | None
) -> None:
    answer = send(env, payload(alert()), token=token, **headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert "bearer token" in answer.json()["error"]
    with env.deps.store.session() as s:
        assert list(s.exec(select(AlertRow))) == []


def test_the_scheme_is_case_insensitive(env: SlackEnv) -> None:
    assert send(env, payload(alert()), token=None, Authorization=f"bearer {AM_TOKEN}").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"not json", 400, "body is not JSON"),
        (b"\xff", 400, "not UTF-8"),
        (payload(alert(status="pending")), 400, "alerts.0.status"),
        (json.dumps({"version": "3", "alerts": []}).encode(), 400, 'only version "4" is understood'),
        (b"{" + b" " * (4 * 1024 * 1024 + 1) + b"}", 413, "set max_alerts"),
    ],
)
def test_malformed_or_oversized_bodies_get_a_4xx_with_the_reason(
    env: SlackEnv, body: bytes, status: int, reason: str
) -> None:
    answer = send(env, body)
    assert answer.status_code == status and reason in answer.json()["error"]
    assert send(env, payload(alert())).status_code == 200  # and the bot goes on


def test_when_the_alerts_cannot_be_stored_the_answer_is_503_so_alertmanager_retries(env: SlackEnv) -> None:
    with env.deps.store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE alertmanager_alert RENAME TO gone"))
    answer = send(env, payload(alert()))
    assert answer.status_code == 503 and "send them again" in answer.json()["error"]
    with env.deps.store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE gone RENAME TO alertmanager_alert"))
    assert send(env, payload(alert())).status_code == 200


def test_without_a_token_the_route_is_off_and_says_how_to_turn_it_on(slack_env: SlackEnv) -> None:
    answer = send(slack_env, payload(alert()))
    assert answer.status_code == 404 and "set ALERTMANAGER_TOKEN" in answer.json()["error"]


@pytest.mark.parametrize("token", ["changeme-changeme-changeme", "short", "your-alertmanager-token", "x" * 32])
def test_a_placeholder_token_is_refused_at_start(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1234-5678-abcdefghijkl")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "8f742231b10e8888abcd99yyyzzz85a5")
    monkeypatch.setenv("ALERTMANAGER_TOKEN", token)
    with pytest.raises(ConfigError, match="ALERTMANAGER_TOKEN must be a random token"):
        load_settings()
    monkeypatch.setenv("ALERTMANAGER_TOKEN", AM_TOKEN)
    settings = load_settings()
    assert isinstance(settings, Settings) and settings.alertmanager_token is not None


def test_the_scheduler_process_acts_on_what_a_web_worker_took(
    tmp_path: Path, fake_slack: FakeSlack, fake_http: FakeHTTP, clock: FakeClock, store: Store
) -> None:
    """Under gunicorn the webhook lands in a web worker; the leader (another process: here another engine and
    nothing shared in memory) reads the stored alert at its next poll. On SQLite and PostgreSQL."""
    web = am_env(tmp_path, fake_slack, fake_http, clock, store.url)
    try:
        assert send(web, payload(alert())).status_code == 200
        assert send(web, payload(alert())).status_code == 200  # Alertmanager's retry: the same again
        notifier = RecordingNotifier()
        leader = Deps(Store(store.url), clock, loopback_session(), StaticDirectory(), notifier, sleep=lambda s: None)
        loaded = load_playbook(tmp_path / "test-release.yaml")
        clock.advance(30)
        flows.poll(leader, loaded, list(loaded.playbook.signals))
        with leader.store.session() as s:
            incident = open_incident(s, playbook="test-release")
            assert incident is not None and incident.trigger == "alerted"
            assert [e.kind for e in timeline(s, incident.id)].count("signal.fired") == 1  # type: ignore[arg-type]
        leader.store.close()
    finally:
        web.server.shutdown()
        web.service.close()


def test_the_leader_polls_alert_signals_as_soon_as_a_webhook_came(env: SlackEnv) -> None:
    """Not at the signal's next slot (every 30s): the scheduler looks every second for what Alertmanager sent."""
    playbooks = list(env.service.playbooks.values())
    seen = flows.poll_alerts(env.deps, playbooks, None)
    assert seen is None and "model_errors" not in env.deps.polled["test-release"]  # nothing sent: no poll
    assert send(env, payload(alert())).status_code == 200
    seen = flows.poll_alerts(env.deps, playbooks, seen)
    assert seen == env.clock.now() and env.deps.polled["test-release"]["model_errors"].value == 1.0
    assert "incident.opened" in kinds(env)
    env.deps.polled["test-release"].pop("model_errors")
    assert flows.poll_alerts(env.deps, playbooks, seen) == seen  # nothing new: no poll
    assert "model_errors" not in env.deps.polled["test-release"]


def test_the_real_scheduler_opens_the_incident_within_seconds_of_the_webhook(env: SlackEnv) -> None:
    sched = build_scheduler(env.deps, list(env.service.playbooks.values()))
    sched.start()
    try:
        time.sleep(1.5)  # the first poll of every group has run; the next is 30 s away
        assert "incident.opened" not in kinds(env)
        assert send(env, payload(alert())).status_code == 200
        deadline = time.monotonic() + 5
        while "incident.opened" not in kinds(env):
            assert time.monotonic() < deadline, "the leader did not act on the webhook within 5 s"
            time.sleep(0.1)
    finally:
        sched.shutdown(wait=True)


ODD = [
    pytest.param({"annotations": {"summary": "\ud800 rate"}}, id="lone-surrogate-in-annotation"),
    pytest.param({"labels": {"alertname": "ModelErrorRate", "service": "svc", "pod": "a\udfffb"}}, id="in-label-value"),
    pytest.param({"labels": {"alertname": "ModelErrorRate", "service": "svc", "p\ud83d": "x"}}, id="in-label-name"),
    pytest.param({"labels": {"alertname": "ModelErrorRate", "service": "svc", "pod": "a\x00b"}}, id="nul-in-label"),
    pytest.param({"annotations": {"summary": "x\x00"}, "generatorURL": "http://p/\ud800"}, id="nul-and-surrogate"),
]


@pytest.mark.parametrize("odd", ODD)
def test_an_alert_with_an_odd_character_is_stored_made_safe_and_matches(
    tmp_path: Path, fake_slack: FakeSlack, fake_http: FakeHTTP, clock: FakeClock, store: Store, odd: dict[str, Any]
) -> None:
    """A lone surrogate or a NUL in one string must not drop the alert: a 503 would make Alertmanager send it
    again forever and it would never arrive. Stored with U+FFFD in their place, the same on both databases."""
    web = am_env(tmp_path, fake_slack, fake_http, clock, store.url)
    try:
        answer = send(web, payload(alert(**odd)))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"stored": 1, "signals": ["test-release/model_errors"]}
        clock.advance(30)
        web.poll()
        assert web.deps.polled["test-release"]["model_errors"].value == 1.0
        assert "incident.opened" in kinds(web)
        with web.deps.store.session() as s:
            [row] = s.exec(select(AlertRow))
        stored = json.dumps([row.labels, row.annotations, row.generator_url], ensure_ascii=False)
        assert "\ufffd" in stored and "\x00" not in stored
        assert stored.encode()  # no lone surrogate left: it is UTF-8
    finally:
        web.server.shutdown()
        web.service.close()


def test_values_the_database_refuses_get_a_422_that_says_why_not_a_503_loop(
    tmp_path: Path, fake_slack: FakeSlack, fake_http: FakeHTTP, clock: FakeClock, store: Store
) -> None:
    if not store.url.startswith("postgresql"):
        pytest.skip("needs a column type SQLite does not enforce")
    web = am_env(tmp_path, fake_slack, fake_http, clock, store.url)
    try:
        with web.deps.store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE alertmanager_alert ALTER COLUMN receiver TYPE varchar(3)"))
        answer = send(web, payload(alert()))
        assert answer.status_code == 422
        assert answer.json()["error"] == (
            "the database refuses these alerts (value too long for type character varying(3)); "
            "sending them again will not help"
        )
    finally:
        web.server.shutdown()
        web.service.close()


def test_an_alert_stored_with_a_nul_before_it_was_made_safe_is_read_safe(
    tmp_path: Path, fake_slack: FakeSlack, fake_http: FakeHTTP, clock: FakeClock, store: Store
) -> None:
    """PostgreSQL's json column kept a NUL that its text columns refuse: the poll that records the alert's
    firing in the timeline failed at every poll."""
    web = am_env(tmp_path, fake_slack, fake_http, clock, store.url)
    try:
        with web.deps.store.session() as s:
            s.add(
                AlertRow(
                    fingerprint="c0ffee",
                    alertname="ModelErrorRate",
                    status="firing",
                    starts_at=clock.now(),
                    received_at=clock.now(),
                    labels={"alertname": "ModelErrorRate", "service": "svc", "pod": "a\x00b"},
                    annotations={"summary": "\x00"},
                )
            )
            s.commit()
        clock.advance(30)
        web.poll()
        assert web.deps.polled["test-release"]["model_errors"].value == 1.0
        assert "incident.opened" in kinds(web)
    finally:
        web.server.shutdown()
        web.service.close()
