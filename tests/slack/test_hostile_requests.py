"""Issue 8 over real HTTP: whatever Slack, the network or an attacker does, every click and command is
answered, recorded and authorized: malformed and replayed requests, people without a role, Slack down from
the first request, user groups that cannot be read, listener failures."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy.exc
from slack_sdk.signature import SignatureVerifier
from sqlmodel import select

from rollback_bot import flows
from rollback_bot.store import Approval, Event
from rollback_bot.store.audit import timeline
from tests.helpers import loopback_session
from tests.slack.conftest import SECRET, SlackEnv
from tests.slack.fake_slack import Call, block_problems

FORM = "application/x-www-form-urlencoded"


def post(env: SlackEnv, body: bytes, content_type: str = FORM, sign: bool = True, **headers: str) -> int:
    ts = str(int(time.time()))
    if sign:
        base = f"v0:{ts}:".encode() + body
        import hashlib
        import hmac

        headers = {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest(),
            **headers,
        }
    response = loopback_session().post(
        f"{env.url}/slack/events", data=body, headers={"Content-Type": content_type, **headers}, timeout=10
    )
    return int(response.status_code)


def click_payload(**over: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "URESP"},
        "channel": {"id": "COPS"},
        "container": {"message_ts": "1001.000100"},
        "actions": [{"action_id": "ack", "value": json.dumps({"i": 1})}],
    }
    payload.update(over)
    return payload


def form(**fields: str) -> bytes:
    return urlencode(fields).encode()


def command(text: str, **over: str) -> bytes:
    fields = {"command": "/rollback", "text": text, "user_id": "URESP", "channel_id": "COPS", "channel_name": "ops"}
    fields.update(over)
    return form(**{k: v for k, v in fields.items() if v != "<drop>"})


def malformed() -> list[tuple[bytes, str]]:
    """Bodies no listener can use, or may only refuse: 100+ shapes."""
    click = click_payload
    out: list[tuple[bytes, str]] = [
        (b"", FORM),
        (b"payload=", FORM),
        (b"payload=not+json", FORM),
        (b"payload=%5B%5D", FORM),
        (b"payload=123", FORM),
        (form(payload="{}"), FORM),
        (form(payload='{"type": 5}'), FORM),
        (form(payload="[" * 50000), FORM),  # nesting deep enough to exhaust a recursive parser
        (b"\xff\xfe\x00garbage", FORM),
        (b"payload=%00", FORM),
        (b"not json", "application/json"),
        (b"[]", "application/json"),
        (b'{"type": "event_callback"}', "application/json"),
        (b'{"type": "url_verification"}', "application/json"),
        (form(payload=json.dumps({"type": "view_submission", "view": {}})), FORM),
        (form(payload=json.dumps({"type": "shortcut"})), FORM),
        (form(payload=json.dumps({"type": "block_actions"})), FORM),
    ]
    broken_clicks: list[dict[str, Any]] = [
        click(user=None),
        click(user="URESP"),
        click(user={}),
        click(user={"id": 7}),
        click(user={"id": "x" * 5000}),
        click(user={"id": "<script>"}),
        click(actions=None),
        click(actions=[]),
        click(actions=[1]),
        click(actions=[{}]),
        click(actions=[{"action_id": ""}]),
        click(actions=[{"action_id": "a" * 300}]),
        click(actions=[{"action_id": "ack", "value": "v" * 3000}]),
        click(actions=[{"action_id": "ack"}] * 30),
        click(channel="COPS"),
        click(channel={"id": None}),
        click(container=[]),
        click(type="block_actions", response_url=["x"]),
    ]
    odd_values = ['{"i": 1e400}', '{"i": -1}', '{"i": 99999999999999999999}', '{"i": null}', "[1]", "{", '"i"']
    odd_values += ['{"i": "1; drop table incident"}', '{"i": true}', '{"i": 0}', '{"i": 1.5}', "null"]
    clicks_with_odd_values = [click(actions=[{"action_id": "ack", "value": v}]) for v in odd_values]
    odd_actions = ["approve:", "approve:../../x", "APPROVE:rollback", "ack ", "hold\n", "x" * 255]
    clicks_with_odd_actions = [click(actions=[{"action_id": a, "value": '{"i": 1}'}]) for a in odd_actions]
    for p in broken_clicks + clicks_with_odd_values + clicks_with_odd_actions:
        out.append((form(payload=json.dumps(p)), FORM))
    commands = [
        command("status", user_id="<drop>"),
        command("status", channel_id="<drop>"),
        command("status", user_id="u lower"),
        command("status", command=""),
        command("x" * 5000),
        command("timeline 99999999999999999999"),
        command("timeline #-1"),
        command("note 99999999999999999999 hello"),
        command("ack 0"),
        command("resolve 2147483648"),
        command("note 1 " + "\u202e" * 10),
        command("status\x00"),
        command("playbook ../../etc/passwd"),
        command("playbook " + "a" * 3000),
        command("payload=1 payload"),
    ]
    out += [(c, FORM) for c in commands]
    # the same again as a JSON body, where Slack never sends one
    out += [
        (json.dumps(click(user=None)).encode(), "application/json"),
        (b'{"command": "/rollback"}', "application/json"),
    ]
    # a real click cut short anywhere (a proxy that drops the end of the body)
    whole = json.dumps(click())
    out += [(form(payload=whole[:n]), FORM) for n in range(1, len(whole), max(1, len(whole) // 40))]
    return out


def test_malformed_requests_get_4xx_never_5xx_and_the_bot_keeps_working(
    slack_env: SlackEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env = slack_env
    env.open_incident()
    env.settle()
    bodies = malformed()
    assert len(bodies) >= 100
    statuses: Counter[int] = Counter()
    with caplog.at_level(logging.WARNING):
        for body, content_type in bodies:
            statuses[post(env, body, content_type, sign=False)] += 1  # unsigned: refused before parsing
            statuses[post(env, body, content_type, sign=True)] += 1
        statuses[post(env, b"x" * 300_000, FORM)] += 1  # too large to read
        statuses[post(env, command("status"), FORM, sign=False, **{"X-Slack-Request-Timestamp": "abc"})] += 1
    assert sum(statuses.values()) >= 200
    assert not [s for s in statuses if s >= 500], statuses
    assert statuses[401] >= len(bodies)  # every unsigned one
    assert statuses[400] >= 40, statuses
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    # nothing above changed the incident, and a real click still works
    [incident] = flows.open_incidents(env.deps)
    assert incident.acknowledged_by is None
    assert env.click("ack", "URESP").status_code == 200
    env.service.drain()
    told = [c.params["text"] for c in env.slack.ephemerals("URESP")]
    assert ":white_check_mark: Acknowledged incident #1" in told


def test_a_replayed_request_changes_nothing(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    body = command("note 1 rolled back by hand").decode()
    ts = int(time.time())
    answers = [env.signed(body, timestamp=ts) for _ in range(3)]  # Slack signs each delivery once
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert Call("reply", answers[0].json()).text_of_blocks() == "Note added"
    with env.deps.store.session() as s:
        notes = [e for e in timeline(s, 1) if e.kind == "note"]
    assert len(notes) == 1


def reply(env: SlackEnv, text: str, user: str, channel: tuple[str, str] = ("COPS", "ops")) -> str:
    response = env.slash(text, user=user, channel=channel)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response_type"] == "ephemeral" and not block_problems(body["blocks"])
    return Call("reply", body).text_of_blocks()


def test_people_without_a_role_or_in_the_wrong_channel_are_refused_reads_and_notes(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    env.settle()
    no_role = ":no_entry: Only people holding a role of playbook test-release"
    assert reply(env, "note 1 let me in", "UX").startswith(no_role)
    assert reply(env, "status", "UX").startswith("1 open incident(s) not shown to you: Only people holding a role")
    assert reply(env, "timeline 1", "UX").startswith(no_role)
    assert reply(env, "playbook test-release", "UX").startswith(no_role)
    elsewhere = ("CRANDOM", "random")
    wrong_place = ":no_entry: Ask in #ops or by direct message"
    assert reply(env, "timeline", "URESP", channel=elsewhere).startswith(wrong_place)
    assert reply(env, "note hello", "URESP", channel=elsewhere).startswith(wrong_place)
    assert "*1 open incident(s)*" in reply(env, "status", "URESP", channel=("D0123", "directmessage"))
    assert reply(env, "note 1 from a DM", "URESP", channel=("D0123", "directmessage")) == "Note added"
    env.settle()
    env.service.drain()
    with env.deps.store.session() as s:
        events = timeline(s, 1)
        playbook_events = list(s.exec(select(Event).where(Event.incident_id == None)))  # noqa: E711
    denied = [e for e in events if e.kind == "access.denied"]
    assert [e.actor for e in denied] == ["UX", "UX", "UX", "URESP", "URESP"]
    assert [e.details["text"] for e in events if e.kind == "note"] == ["from a DM"]
    assert [e.actor for e in playbook_events if e.kind == "access.denied"] == ["UX"]  # the playbook view
    assert env.slack.uploaded() == {}  # no timeline went anywhere
    assert not [c for c in env.slack.thread() if "may not" in str(c.params.get("text"))], "refusals are not posted"


@pytest.mark.parametrize(
    "answer",
    [
        (503, {"ok": False, "error": "service_unavailable"}, {}),
        (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}),
        (500, {"ok": False, "error": "internal_error"}, {}),
    ],
    ids=["503", "429", "500"],
)
def test_slack_failing_from_before_the_first_request_still_takes_acks_and_approvals(
    slack_env: SlackEnv, answer: tuple[int, dict[str, Any], dict[str, str]]
) -> None:
    env = slack_env
    env.slack.down, env.slack.down_answer = True, answer
    env.open_incident()
    assert reply(env, "ack", "UIC") == "Acknowledged incident #1"  # no auth.test, no Slack call needed
    started = time.monotonic()
    assert env.click("approve:lock", "UIC").status_code == 200
    assert time.monotonic() - started < 1.0
    env.wait_for(lambda: env.http.posts("/lock"))  # the action runs though Slack is down
    # a person whose role comes from a user group nobody could read is told so; nothing is refused
    assert reply(env, "note 1 on it", "UAPP1").startswith(":no_entry: I cannot check your role right now")
    env.service.drain()
    with env.deps.store.session() as s:
        kinds = [e.kind for e in timeline(s, 1)]
    assert {"ack", "approval", "action.started", "role.unknown"} <= set(kinds)
    assert not {"ack.denied", "approval.denied", "access.denied"} & set(kinds)
    env.slack.down = False  # Slack is back: everything recorded reaches the thread
    env.service.sync.sync_all()
    env.settle()
    env.service.sync.sync_all()  # in case a background sync held the incident's lease meanwhile
    assert any("acknowledged by" in str(c.params.get("text")) for c in env.slack.thread())


def test_an_approver_is_never_refused_because_user_groups_cannot_be_read(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    env.clock.advance(timedelta(hours=1))
    flows.tick(env.deps)
    env.settle()
    failure: tuple[int, dict[str, Any], dict[str, str]] = (500, {"ok": False, "error": "internal_error"}, {})
    env.slack.fail["usergroups.users.list"] = [failure] * 10
    env.clock.advance(timedelta(minutes=11))  # what was read before is older than ROLE_CACHE_MAX_STALE now
    env.click("approve:rollback", "UAPP1")
    env.service.drain()
    told = env.slack.ephemerals("UAPP1")[-1].params["text"]
    assert told.startswith(
        ":no_entry: I cannot check your role right now (Slack did not give the members of SAPPROVERS"
    )
    with env.deps.store.session() as s:
        kinds = [e.kind for e in timeline(s, 1)]
        assert s.exec(select(Approval)).all() == []
    assert "role.unknown" in kinds and "approval.denied" not in kinds
    env.slack.fail["usergroups.users.list"] = []  # Slack answers again: once asked again (10 s on), it counts
    env.clock.advance(timedelta(seconds=11))
    env.click("approve:rollback", "UAPP1")
    env.service.drain()
    assert env.slack.ephemerals("UAPP1")[-1].params["text"].startswith(":white_check_mark: Approved 'Roll back'")


def test_a_failing_listener_tells_the_person_and_logs_an_id(
    slack_env: SlackEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env = slack_env
    env.open_incident()

    def broken(*args: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(flows, "acknowledge", broken)
    with caplog.at_level(logging.ERROR):
        answer = env.slash("ack", user="URESP")
        assert answer.status_code == 200
        said = answer.json()["text"]
        assert env.click("ack", "URESP").status_code == 200
        env.service.drain()
    assert said.startswith(":warning: Something went wrong; it is logged as `")
    ref = said.split("`")[1]
    assert any(ref in r.getMessage() and r.exc_info for r in caplog.records)
    assert env.slack.ephemerals("URESP")[-1].params["text"].startswith(":warning: Something went wrong")


def test_signatures_are_checked_on_the_raw_body(slack_env: SlackEnv) -> None:
    env = slack_env
    body = command("status")
    ts = str(int(time.time()))
    good = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body.decode())
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": good, "Content-Type": FORM}
    session = loopback_session()
    altered = body.replace(b"status", b"help&x")
    assert session.post(f"{env.url}/slack/events", data=altered, headers=headers, timeout=5).status_code == 401
    assert session.post(f"{env.url}/slack/events", data=body, headers=headers, timeout=5).status_code == 200


def test_a_slack_that_never_answers_lookups_still_gets_clicks_answered_in_time(slack_env: SlackEnv) -> None:
    """Role and name lookups sit on a click's path: each gives up after 1 s, and after a failure Slack is not
    asked again for a while, so the next clicks are answered at once."""
    env = slack_env
    env.open_incident()
    env.clock.advance(timedelta(hours=1))
    flows.tick(env.deps)
    env.settle()
    env.clock.advance(timedelta(minutes=11))  # what was read before is too old to use
    env.slack.hang_seconds = 5.0
    env.slack.lose["usergroups.users.list"] = ["hang"] * 20
    env.slack.lose["users.info"] = ["hang"] * 20
    started = time.monotonic()  # a note reads every role: two user groups and the person's name
    assert reply(env, "note 1 is anyone there", "UAPP1").startswith(":no_entry: I cannot check your role")
    first = time.monotonic() - started
    assert first < 1.8, first  # one lookup's timeout, not three: the others know Slack is not answering
    started = time.monotonic()
    assert env.click("approve:rollback", "UAPP2").status_code == 200
    started = time.monotonic()
    assert env.click("approve:rollback", "UAPP2").status_code == 200
    again = time.monotonic() - started
    assert again < 0.5, again
    env.service.drain()
    told = [c.params["text"] for c in env.slack.ephemerals("UAPP2")]
    assert len(told) == 2 and all(t.startswith(":no_entry: I cannot check your role right now") for t in told)


def test_a_person_clicking_a_refused_button_again_and_again_does_not_flood_the_thread(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    env.settle()
    for _ in range(12):
        assert env.click("ack", "UX").status_code == 200
    env.service.drain()
    env.settle()
    env.service.sync.sync_all()
    with env.deps.store.session() as s:
        denied = [e for e in timeline(s, 1) if e.kind == "ack.denied"]
    assert len(denied) == 12  # every refusal is in the timeline ...
    posted = [c for c in env.slack.thread() if "may not acknowledge" in str(c.params.get("text"))]
    assert len(posted) == 1  # ... and the thread shows it once per 10 minutes
    assert len(env.slack.ephemerals("UX")) == 12  # the person is answered every time
    env.clock.advance(timedelta(minutes=11))
    env.click("ack", "UX")
    env.service.drain()
    env.settle()
    assert len([c for c in env.slack.thread() if "may not acknowledge" in str(c.params.get("text"))]) == 2


def test_a_database_that_cannot_be_reached_is_said_out_loud(
    slack_env: SlackEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = slack_env
    env.open_incident()

    def unreachable(*args: object, **kw: object) -> None:
        raise sqlalchemy.exc.OperationalError("connect", {}, Exception("connection refused"))

    monkeypatch.setattr(env.service.store.engine, "connect", unreachable)
    answer = env.slash("ack", user="URESP")
    assert answer.status_code == 200
    assert answer.json()["text"].startswith(":warning: I cannot reach my database right now, so nothing was recorded")
    assert env.click("ack", "URESP").status_code == 503  # Slack shows the clicker the click failed
