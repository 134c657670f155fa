"""Reminders escalate while nobody acknowledges, fire before a step ends with work undone, go out once
(restarts included); a hold stops further action stages until released."""

from __future__ import annotations

from datetime import timedelta

from rollback_bot import flows
from tests.flows.conftest import Env
from tests.flows.test_ladder_and_actions import open_incident


def reminders(env: Env, iid: int) -> list[tuple[str, list[str], list[str]]]:
    return [
        (e.details["key"], e.details["roles"], e.details["mentions"]) for e in env.events(iid) if e.kind == "reminder"
    ]


def test_unacknowledged_incident_reminds_then_escalates_once_each(env: Env) -> None:
    iid = open_incident(env)
    env.clock.advance(timedelta(minutes=14))
    flows.tick(env.deps)
    assert reminders(env, iid) == []
    env.clock.advance(timedelta(minutes=1))
    flows.tick(env.deps)
    flows.tick(env.deps)
    assert reminders(env, iid) == [("ack:1", ["incident_commander", "responder"], ["UIC", "URESP"])]
    env.clock.advance(timedelta(minutes=15))
    flows.tick(env.deps)
    assert reminders(env, iid)[-1] == (
        "ack:2",
        ["incident_commander", "responder", "approver"],
        ["UAPP1", "UAPP2", "UIC", "URESP"],
    )
    after = env.restart()
    flows.tick(after.deps)
    assert len(reminders(env, iid)) == 2  # not repeated by a new process
    after.clock.advance(timedelta(minutes=15))
    flows.tick(after.deps)
    ack3 = next(r for r in reminders(env, iid) if r[0] == "ack:3")
    assert "USAFE" in ack3[2]
    after.clock.advance(timedelta(minutes=15))
    flows.tick(after.deps)
    keys = [r[0] for r in reminders(env, iid)]
    assert [k for k in keys if k.startswith("ack:")] == ["ack:1", "ack:2", "ack:3"]  # escalation ends there
    assert keys.count("step:1") == 1  # the step was ending with 'Lock' not done
    summary = next(e.summary for e in env.events(iid) if e.kind == "reminder")
    assert summary == "reminder: incident #1 is still unacknowledged after 15m (for incident_commander, responder)"


def test_after_downtime_only_the_newest_reminder_goes_out(env: Env) -> None:
    iid = open_incident(env)
    env.clock.advance(timedelta(minutes=35))
    flows.tick(env.deps)
    assert [r[0] for r in reminders(env, iid)] == ["ack:2"]


def test_acknowledged_incident_gets_no_ack_reminder(env: Env) -> None:
    iid = open_incident(env)
    flows.acknowledge(env.deps, iid, "URESP")
    env.clock.advance(timedelta(minutes=40))
    flows.tick(env.deps)
    assert reminders(env, iid) == []


def test_step_ending_with_actions_not_done_reminds_the_roles_needed(env: Env) -> None:
    iid = open_incident(env)
    flows.acknowledge(env.deps, iid, "URESP")
    env.clock.advance(timedelta(minutes=44))
    flows.tick(env.deps)
    assert reminders(env, iid) == []
    env.clock.advance(timedelta(minutes=1))
    flows.tick(env.deps)
    flows.tick(env.deps)
    [(key, roles, mentions)] = reminders(env, iid)
    assert (key, roles, mentions) == ("step:1", ["incident_commander", "safety_lead"], ["UIC", "USAFE"])
    text = env.last("reminder", iid).details["text"]
    assert text == "step 1 'Flag' ends in 15m; not done: Lock (needs incident_commander)"


def test_no_step_reminder_when_the_step_is_done(env: Env) -> None:
    iid = open_incident(env)
    flows.acknowledge(env.deps, iid, "URESP")
    flows.approve(env.deps, iid, "lock", "UIC")
    env.clock.advance(timedelta(minutes=50))
    flows.tick(env.deps)
    assert reminders(env, iid) == []


def test_hold_stops_further_stages_until_released(env: Env) -> None:
    iid = open_incident(env)
    env.clock.advance(timedelta(hours=1))
    flows.tick(env.deps)
    flows.approve(env.deps, iid, "rollback", "UAPP1")
    flows.approve(env.deps, iid, "rollback", "USAFE")
    assert [p.body["percent"] for p in env.http.posts("/rollback")] == ["10"]
    denied = flows.hold(env.deps, iid, "UAPP1")
    assert not denied.ok and denied.message == "Only incident_commander may hold this incident."
    assert flows.hold(env.deps, iid, "UIC").ok
    again = flows.hold(env.deps, iid, "UIC")
    assert not again.ok and again.message.startswith("already on hold by Ines (UIC) at ")
    env.clock.advance(timedelta(minutes=30))
    flows.tick(env.deps)
    assert [p.body["percent"] for p in env.http.posts("/rollback")] == ["10"]
    assert flows.release(env.deps, iid, "UIC").ok
    assert [p.body["percent"] for p in env.http.posts("/rollback")] == ["10", "100"]
    assert not flows.release(env.deps, iid, "UIC").ok
    kinds = env.kinds(iid)
    assert kinds.index("incident.held") < kinds.index("incident.released")
