"""Buttons over real HTTP with signed requests: who may click what, double and stale clicks, forgeries."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlmodel import select

from rollback_bot import flows
from rollback_bot.store import Approval, Event
from tests.slack.conftest import SlackEnv


def ephemeral_text(env: SlackEnv, user: str, n: int = 1) -> str:
    calls = env.wait_for(lambda: len(env.slack.ephemerals(user)) >= n and env.slack.ephemerals(user))
    return str(calls[n - 1].params["text"])


def updates(env: SlackEnv) -> int:
    return len(env.slack.of("chat.update"))


def test_acknowledge_is_role_gated_and_a_second_click_is_told_who_did_it(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    env.settle()
    before = updates(env)
    assert env.click("ack", "UX").status_code == 200
    assert ephemeral_text(env, "UX") == ":no_entry: Only incident_commander or responder may acknowledge this incident."
    env.settle()
    assert updates(env) == before  # a denial does not change the message ...
    with env.deps.store.session() as s:  # ... and is in the audit log
        denied = s.exec(select(Event).where(Event.kind == "ack.denied")).one()
    assert denied.actor == "UX" and "Xavier (UX)" in denied.summary
    assert any(c.params["text"].startswith("Xavier (UX) may not acknowledge") for c in env.slack.thread())

    env.clock.advance(timedelta(minutes=3))
    env.click("ack", "URESP")
    assert ephemeral_text(env, "URESP") == ":white_check_mark: Acknowledged incident #1"
    env.settle()
    alert = env.slack.last_alert()
    assert alert.method == "chat.update"
    assert "*Open*, acknowledged by <@URESP> at 09:03 UTC" in alert.text_of_blocks()
    assert "Acknowledge" not in [b["text"]["text"] for b in alert.buttons()]

    before = updates(env)
    env.click("ack", "UIC")  # clicked on a message that has moved on
    assert ephemeral_text(env, "UIC") == ":no_entry: Already acknowledged by Rui (URESP) at 09:03:00 UTC"
    env.settle()
    assert updates(env) == before


def test_two_person_approval_runs_the_action_once_whatever_the_clicks(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    env.clock.advance(timedelta(hours=1))
    flows.tick(env.deps)
    env.poll()
    env.settle()
    env.click("approve:rollback", "UX")
    assert ephemeral_text(env, "UX") == (
        ":no_entry: You cannot approve 'Roll back': it needs the role approver or safety_lead."
    )
    env.click("approve:rollback", "UAPP1")
    assert (
        ephemeral_text(env, "UAPP1") == ":white_check_mark: Approved 'Roll back' as approver; still needs safety_lead."
    )
    env.settle()
    shown = env.slack.last_alert().text_of_blocks()
    assert "*Roll back* (needs approver + safety_lead): :white_check_mark: approver: <@UAPP1> 10:00 UTC" in shown
    assert ":hourglass: safety_lead" in shown
    posted, updated = len(env.slack.thread()), updates(env)
    env.click("approve:rollback", "UAPP1")  # a double click
    assert ephemeral_text(env, "UAPP1", 2).startswith(":no_entry: You already approved as approver")
    env.settle()  # answered and in the timeline, but the thread and the alert stay as they were
    assert (len(env.slack.thread()), updates(env)) == (posted, updated)
    with env.deps.store.session() as s:
        assert s.exec(select(Event).where(Event.kind == "approval.duplicate")).one().actor == "UAPP1"

    # the last approval: two people at the same moment, and Slack delivering one click twice (the same signed
    # request: the second is a replay, answered and ignored)
    barrier = threading.Barrier(3)
    results: list[int] = []
    same_moment = int(time.time())

    def click(user: str) -> None:
        barrier.wait()
        results.append(env.click("approve:rollback", user, trigger_id=user, timestamp=same_moment).status_code)

    threads = [threading.Thread(target=click, args=(u,)) for u in ("USAFE", "USAFE", "UAPP2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200, 200, 200]
    env.wait_for(lambda: len(env.slack.ephemerals("USAFE")) >= 1 and len(env.slack.ephemerals("UAPP2")) == 1)
    env.wait_for(lambda: any(c.params["text"].startswith("Roll back stage 10%: succeeded") for c in env.slack.thread()))
    env.settle()
    assert len(env.http.posts("/rollback")) == 1
    with env.deps.store.session() as s:
        approvals = s.exec(select(Approval).where(Approval.action_id == "rollback")).all()
    assert sorted((a.user_id, a.role) for a in approvals) == [("UAPP1", "approver"), ("USAFE", "safety_lead")]
    assert all(a.evidence["errors"]["value"] == 0.05 for a in approvals)
    env.service.drain()
    # the copy is ignored, or (when both arrive at the same instant) told the action is already approved
    told = [c.params["text"] for c in env.slack.ephemerals("USAFE")]
    [safe] = [t for t in told if t.startswith(":white_check_mark:")]
    copy = [t for t in told if t != safe]
    assert len(copy) <= 1 and all(c.startswith(":no_entry: 'Roll back' was already fully approved") for c in copy)
    assert (
        safe == ":white_check_mark: Approved 'Roll back' as safety_lead; approvals complete: it starts now (stage 10%)."
    )
    assert env.slack.ephemerals("UAPP2")[0].params["text"].startswith(":no_entry:")
    shown = env.slack.last_alert().text_of_blocks()
    assert "stages: :white_check_mark: 10%  :white_circle: 100%" in shown
    assert "Approve: Roll back" not in [b["text"]["text"] for b in env.slack.last_alert().buttons()]


def test_clicks_are_acknowledged_at_once_while_slow_work_runs_after(slack_env: SlackEnv) -> None:
    env = slack_env
    env.http.delay["/lock"] = 4.0  # a webhook slower than Slack's 3 seconds
    env.open_incident()
    env.settle()
    started = time.monotonic()
    response = env.click("approve:lock", "UIC")
    took = time.monotonic() - started
    assert response.status_code == 200 and took < 1.0, took  # Slack gives 3 s; the webhook alone takes 4
    told = ephemeral_text(env, "UIC")
    assert time.monotonic() - started < 1.0  # the approver's answer does not wait for the webhook either
    assert told == ":white_check_mark: Approved 'Lock' as incident_commander; approvals complete: it starts now."
    env.wait_for(lambda: env.http.posts("/lock"))
    env.service.drain()
    assert len(env.http.posts("/lock")) == 1


def test_forged_or_stale_requests_change_nothing(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    env.settle()
    calls = len(env.slack.calls)
    assert env.click("ack", "URESP", secret="not-the-signing-secret").status_code == 401
    assert env.click("ack", "URESP", timestamp=int(time.time()) - 6 * 60).status_code == 401
    assert env.slash("resolve", user="UIC", timestamp=int(time.time()) + 6 * 60).status_code == 401
    time.sleep(0.3)
    env.settle()
    assert len(env.slack.calls) == calls
    [incident] = flows.open_incidents(env.deps)
    assert incident.acknowledged_by is None and incident.status == "open"


def test_hold_and_resolve_buttons(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    env.click("hold", "UIC")
    assert ephemeral_text(env, "UIC") == ":white_check_mark: Incident #1 on hold"
    env.settle()
    assert [b["text"]["text"] for b in env.slack.last_alert().buttons()][-2:] == ["Release hold", "Resolve"]
    assert "*On hold* by <@UIC>" in env.slack.last_alert().text_of_blocks()
    env.click("resolve", "UAPP1")
    assert ephemeral_text(env, "UAPP1") == ":no_entry: Only incident_commander may resolve this incident."
    env.click("resolve", "UIC")
    assert ephemeral_text(env, "UIC", 2) == ":white_check_mark: Incident #1 resolved"
    env.settle()
    final = env.slack.last_alert()
    assert final.buttons() == [] and ":white_check_mark: *Resolved* by <@UIC>" in final.text_of_blocks()


def test_a_lapsed_approval_is_said_in_the_thread_mentioning_the_approver(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    env.clock.advance(timedelta(hours=1))
    flows.tick(env.deps)
    env.click("approve:rollback", "UAPP1")
    answer = ephemeral_text(env, "UAPP1")
    assert answer == ":white_check_mark: Approved 'Roll back' as approver; still needs safety_lead."
    env.clock.advance(timedelta(hours=2))  # nobody else approved: by default an approval stands for 2h
    flows.tick(env.deps)
    env.settle()
    said = [c.text_of_blocks() for c in env.slack.thread() if "Approval lapsed" in c.text_of_blocks()]
    assert len(said) == 1, said
    assert said[0].startswith(
        ":hourglass: *Approval lapsed:* Ada (UAPP1)'s approval of 'Roll back' as approver lapsed: given 2h ago; "
        "approvals of this action lapse after 2h; approve again if it still stands"
    )
    assert "still stands\n<@UAPP1>\napproval.lapsed" in said[0]
    env.click("approve:rollback", "UAPP1")  # asked again: the same person may approve again
    assert ephemeral_text(env, "UAPP1", 2).startswith(":white_check_mark: Approved 'Roll back' as approver")
