"""Exactly one visible message per event, also when Slack performs chat.postMessage and its answer is lost
(the connection drops, the answer comes after the client's timeout, a 500), or the bot is killed between
Slack's post and its cursor update."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections import Counter
from typing import Any

import pytest
from sqlmodel import update

from rollback_bot import flows
from rollback_bot.slack import lookup
from rollback_bot.slack.blocks import thread_event
from rollback_bot.slack.client import make_client
from rollback_bot.store import Incident, Store
from rollback_bot.store.audit import timeline
from tests.slack.conftest import TOKEN, SlackEnv, start, wait_until
from tests.slack.fake_slack import FakeSlack


def owed(store: Store, incident_id: int = 1) -> list[str]:
    """The thread replies the timeline owes Slack, in order: one per event but the opening."""
    with store.session() as s:
        return [thread_event(e).text for e in timeline(s, incident_id) if e.kind != "incident.opened"]


def caught_up(store: Store, incident_id: int = 1) -> bool:
    with store.session() as s:
        incident, events = s.get(Incident, incident_id), timeline(s, incident_id)
        return incident is not None and incident.slack_cursor == max(e.id or 0 for e in events)


def parents(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.visible("#ops") if "thread_ts" not in m]


def thread(slack: FakeSlack) -> list[str]:
    [parent] = parents(slack)
    return [m["text"] for m in slack.visible("#ops") if m.get("thread_ts") == parent["ts"]]


def lookups(slack: FakeSlack) -> list[str]:
    return [c.method for c in slack.calls if c.method.startswith("conversations.")]


def catch_up(env: SlackEnv, times: int = 3) -> None:
    """What the minute's catch-up does; each run gets past one lost answer."""
    env.settle()
    for _ in range(times):
        env.service.sync.sync_all()


def test_lost_answers_to_thread_replies_give_one_reply_per_event(slack_env: SlackEnv) -> None:
    env, slack = slack_env, slack_env.slack
    env.open_incident()
    flows.add_note(env.deps, 1, "URESP", "note before")
    env.settle()
    assert lookups(slack) == []  # every answer arrived: no lookup at all
    slack.lose["chat.postMessage"] = ["drop"] * 3  # Slack posts, the connection drops before the answer
    slack.lose["conversations.replies"] = ["drop", "500"]  # and a lookup's answer too: reads are retried
    for i in range(3):
        flows.add_note(env.deps, 1, "URESP", f"note {i}")  # each kicks a sync
        env.service.sync.kick(1)
    catch_up(env)
    assert thread(slack) == owed(env.deps.store)
    notes = [t.rsplit(": ", 1)[-1] for t in thread(slack) if t.startswith("note by")]
    assert notes == ["note before", "note 0", "note 1", "note 2"]
    assert slack.lose == {"chat.postMessage": [], "conversations.replies": []}
    assert Counter(lookups(slack)) == {"conversations.replies": 3 + 2}  # one per lost post, two retried
    assert len(slack.of("chat.postMessage")) == len(slack.visible())  # nothing was posted twice
    assert flows.open_incidents(env.deps)[0].slack_pending is None


def test_lost_answers_to_the_parent_give_one_alert(slack_env: SlackEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    env, slack = slack_env, slack_env.slack
    monkeypatch.setattr(lookup, "LIST_PAGE", 40)  # '#ops' is on the 4th page of the workspace's channels
    slack.lose["chat.postMessage"] = ["drop", "drop"]  # the alert, then the first thread reply
    env.open_incident()
    env.service.sync.kick(1)
    catch_up(env)
    [parent] = parents(slack)
    [incident] = flows.open_incidents(env.deps)
    assert (incident.slack_channel, incident.slack_ts) == ("COPS", parent["ts"])
    assert thread(slack) == owed(env.deps.store)
    # the alert found again is brought up to date once (what it showed was not known), then left alone
    assert [c.params["ts"] for c in slack.of("chat.update")] == [parent["ts"]]
    assert Counter(lookups(slack)) == {"conversations.list": 4, "conversations.history": 1, "conversations.replies": 1}
    assert len(slack.of("chat.postMessage")) == len(slack.visible())


def test_an_answer_after_the_timeout_with_syncs_meanwhile_gives_one_channel_message(slack_env: SlackEnv) -> None:
    env, slack = slack_env, slack_env.slack
    env.service.client.timeout = 1
    slack.hang_seconds = 2.0  # Slack posts, and answers only after the client gave up
    slack.lose["chat.postMessage"] = ["hang"]
    env.http.routes["/kpi"] = (500, {"error": "down"})
    env.poll()
    env.clock.advance(30)
    env.poll()  # lost_after: 2 -> "signal lost" for the playbook's channel, synced in the background
    env.wait_for(lambda: slack.visible("#ops"))
    syncs = [threading.Thread(target=env.service.sync.sync_playbook, args=("test-release",)) for _ in range(3)]
    for t in syncs:  # other syncs while the first waits for its answer
        t.start()
    env.service.sync.kick("test-release")
    for t in syncs:
        t.join()
    catch_up(env)
    texts = [m["text"] for m in slack.visible("#ops")]
    assert len(texts) == 1 and texts[0].startswith("signal lost: errors (2 failed reads"), texts
    assert [c.loss for c in slack.of("chat.postMessage")] == ["hang"]  # posted once, found, never again
    assert Counter(lookups(slack)) == {"conversations.list": 1, "conversations.history": 1}


def test_a_500_after_slack_posted_gives_one_message(slack_env: SlackEnv) -> None:
    env, slack = slack_env, slack_env.slack
    env.open_incident()
    env.settle()
    slack.lose["chat.postMessage"] = ["500"]
    flows.add_note(env.deps, 1, "URESP", "the payload service is down")
    catch_up(env)
    assert thread(slack) == owed(env.deps.store)
    assert thread(slack).count("note by Rui (URESP): the payload service is down") == 1


def test_a_refusal_is_not_looked_for(slack_env: SlackEnv) -> None:
    env, slack = slack_env, slack_env.slack
    env.open_incident()
    env.settle()
    slack.fail["chat.postMessage"] = [(200, {"ok": False, "error": "msg_too_long"}, {})]  # Slack said no: not posted
    flows.add_note(env.deps, 1, "URESP", "refused once")
    catch_up(env)
    assert thread(slack).count("note by Rui (URESP): refused once") == 1
    assert lookups(slack) == []


def test_only_calls_that_cannot_show_twice_are_retried_by_the_client(fake_slack: FakeSlack) -> None:
    client = make_client(TOKEN, fake_slack.api_url)
    fake_slack.lose = {"chat.postMessage": ["drop"], "chat.update": ["drop"], "conversations.history": ["500"]}
    with pytest.raises(ConnectionError):
        client.chat_postMessage(channel="#ops", text="once")
    assert len(fake_slack.attempts("chat.postMessage")) == 1 and len(fake_slack.visible("#ops")) == 1
    ts = fake_slack.visible("#ops")[0]["ts"]
    assert client.chat_update(channel="COPS", ts=ts, text="edited")["ok"]  # idempotent: retried
    assert len(fake_slack.attempts("chat.update")) == 2
    assert client.conversations_history(channel="COPS")["messages"][0]["text"] == "edited"
    assert len(fake_slack.attempts("conversations.history")) == 2


@pytest.mark.slow
def test_kill_9_between_slacks_post_and_the_cursor_gives_one_message_after_restart(
    deployment: dict[str, Any], store: Store
) -> None:
    env, procs, slack = deployment["env"], deployment["procs"], deployment["slack"]
    running: list[subprocess.Popen[str]] = []

    def kill() -> None:  # Slack has posted; the bot dies before it hears so
        running[-1].send_signal(signal.SIGKILL)
        running[-1].wait()

    def run() -> None:
        running.append(start([sys.executable, "-m", "rollback_bot.cli", "serve", "--scheduler-only"], env, procs))

    def expire_lease() -> None:  # the dead process's lease on the incident runs out (60 s), now
        again = Store(store.url)
        with again.session() as s:
            s.exec(update(Incident).values(slack_lease_until=None))
            s.commit()
        again.close()

    slack.lose["chat.postMessage"] = [kill, None, kill]  # the alert, the first reply, the second reply
    run()
    wait_until(lambda: running[0].poll() is not None, 60, "the kill at the alert", [])
    assert len(parents(slack)) == 1
    expire_lease()
    run()
    wait_until(lambda: running[1].poll() is not None, 60, "the kill at the second reply", [])
    assert len(thread(slack)) == 2
    expire_lease()
    run()
    check = Store(store.url)
    try:
        wait_until(lambda: caught_up(check), 60, "the catch-up", [running[2]])
        assert thread(slack) == owed(check)
        assert len(parents(slack)) == 1
        assert len(set(thread(slack))) == len(thread(slack))  # each event once
        assert lookups(slack) == ["conversations.list", "conversations.history", "conversations.replies"]
    finally:
        check.close()
    running[2].send_signal(signal.SIGTERM)
    code = running[2].wait(timeout=30)
    assert code == 0, running[2].stdout.read() if running[2].stdout else ""
