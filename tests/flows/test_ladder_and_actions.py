"""The ladder in time, who may act, and actions that run exactly once with an idempotent webhook."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import text
from sqlmodel import select

from rollback_bot import flows
from rollback_bot.store import ActionRun, Approval, leader
from tests.flows.conftest import Env


def open_incident(env: Env) -> int:
    env.metrics["errors"] = 0.05
    env.poll()
    [incident] = env.incidents()
    assert incident.id is not None
    return incident.id


def test_steps_are_entered_on_time_and_announced_once(env: Env) -> None:
    iid = open_incident(env)
    env.clock.advance(timedelta(minutes=59))
    flows.tick(env.deps)
    assert env.kinds().count("step.entered") == 1
    env.clock.advance(timedelta(minutes=1))
    flows.tick(env.deps)
    flows.tick(env.deps)
    entered = [e for e in env.events(iid) if e.kind == "step.entered"]
    assert [e.details["name"] for e in entered] == ["Flag", "Revert"]
    assert entered[1].details["late_by_seconds"] == 0
    assert "status-update" in entered[1].details["comms"]
    env.clock.advance(timedelta(hours=2))
    flows.tick(env.deps)
    assert env.kinds(iid)[-2:] == ["step.entered", "ladder.completed"] or env.kinds(iid)[-1] == "ladder.completed"


def test_a_step_missed_while_down_is_entered_late_and_says_what_was_skipped(env: Env) -> None:
    iid = open_incident(env)
    env.clock.advance(timedelta(hours=2, minutes=30))
    flows.tick(env.deps)
    last = env.last("step.entered", iid)
    assert last.details["name"] == "Watch"
    assert last.details["skipped"] == ["Revert"]
    assert last.details["late_by"] == "30m"


def test_acknowledge_roles_and_repeats(env: Env) -> None:
    iid = open_incident(env)
    env.clock.advance(timedelta(minutes=4))
    denied = flows.acknowledge(env.deps, iid, "UX")
    assert not denied.ok and denied.message == "Only incident_commander or responder may acknowledge this incident."
    ok = flows.acknowledge(env.deps, iid, "URESP")  # a responder through the SONCALL user group
    assert ok.ok
    again = flows.acknowledge(env.deps, iid, "UIC")
    assert not again.ok and again.message.startswith("already acknowledged by Rui (URESP) at ")
    kinds = env.kinds(iid)
    assert kinds.count("ack.denied") == 1 and kinds.count("ack") == 1
    ack = next(e for e in env.events(iid) if e.kind == "ack")
    assert (ack.actor, ack.role) == ("URESP", "responder")
    assert ack.details["minutes_to_ack"] == 4.0
    [incident] = env.incidents()
    assert incident.acknowledged_by == "URESP"


def test_two_person_rollback_with_denials_and_staged_idempotent_webhooks(env: Env) -> None:
    iid = open_incident(env)
    early = flows.approve(env.deps, iid, "rollback", "UAPP1")
    assert not early.ok and "belongs to step 2 (Revert)" in early.message
    env.clock.advance(timedelta(hours=1))
    flows.tick(env.deps)
    env.poll()  # the scheduler keeps readings fresh; approvals record what they were at the click
    assert not flows.approve(env.deps, iid, "rollback", "UX").ok
    first = flows.approve(env.deps, iid, "rollback", "UAPP1")
    assert first.ok and first.message == "Approved 'Roll back' as approver; still needs safety_lead."
    dup = flows.approve(env.deps, iid, "rollback", "UAPP1")
    assert dup.message == "You already approved as approver; still needs safety_lead from someone else."
    other = flows.approve(env.deps, iid, "rollback", "UAPP2")  # a second approver cannot fill safety_lead
    assert not other.ok and other.message == "You cannot approve 'Roll back': it needs the role safety_lead."
    assert env.http.posts("/rollback") == []
    done = flows.approve(env.deps, iid, "rollback", "USAFE")
    assert done.ok
    [stage10] = env.http.posts("/rollback")
    assert stage10.body == {"percent": "10"}
    assert stage10.headers["Idempotency-Key"] == f"rollback-bot/test-release/{iid}/rollback/10"
    late = flows.approve(env.deps, iid, "rollback", "UAPP2")
    assert not late.ok and late.message.startswith("'Roll back' was already fully approved (last by Sam (USAFE)")
    env.clock.advance(timedelta(minutes=9))
    flows.tick(env.deps)
    assert len(env.http.posts("/rollback")) == 1  # stage_every not yet passed
    env.clock.advance(timedelta(minutes=1))
    flows.tick(env.deps)
    flows.tick(env.deps)
    posts = env.http.posts("/rollback")
    assert [p.body["percent"] for p in posts] == ["10", "100"]
    kinds = env.kinds(iid)
    assert kinds.count("approval") == 2 and kinds.count("approval.denied") == 2
    assert kinds.count("approval.duplicate") == 1 and kinds.count("action.succeeded") == 2
    with env.deps.store.session() as s:
        approvals = list(s.exec(select(Approval).where(Approval.incident_id == iid)))
    assert {(a.user_id, a.role) for a in approvals} == {("UAPP1", "approver"), ("USAFE", "safety_lead")}
    assert all(a.evidence["errors"]["value"] == 0.05 for a in approvals)  # the values each approver saw
    denial = next(e for e in env.events(iid) if e.kind == "approval.denied")
    assert denial.actor == "UX" and "errors" in denial.details["values"]
    approval = next(e for e in env.events(iid) if e.kind == "approval" and e.actor == "USAFE")
    assert (approval.role, approval.details["name"], approval.details["values"]["errors"]["value"]) == (
        "safety_lead",
        "Sam",
        0.05,
    )


def test_webhook_retries_transient_failures_with_the_same_key_and_stops_on_4xx(env: Env) -> None:
    iid = open_incident(env)
    answers = iter([(503, {"e": 1}), (500, {"e": 2}), (200, {"ok": True})])
    env.http.routes["/lock"] = lambda rec: next(answers)
    assert flows.approve(env.deps, iid, "lock", "UIC").ok
    posts = env.http.posts("/lock")
    assert len(posts) == 3 and len({p.headers["Idempotency-Key"] for p in posts}) == 1
    result = env.events(iid)[-1]
    assert result.kind == "action.succeeded" and result.details["attempts"] == 3
    env.clock.advance(timedelta(hours=1))
    flows.tick(env.deps)
    env.http.routes["/rollback"] = (422, {"error": "unknown service"})
    flows.approve(env.deps, iid, "rollback", "UAPP1")
    flows.approve(env.deps, iid, "rollback", "USAFE")
    assert len(env.http.posts("/rollback")) == 1  # no retry on a client error
    failed = env.events(iid)[-1]
    assert failed.kind == "action.failed" and failed.details["http_status"] == 422
    env.clock.advance(timedelta(minutes=30))
    flows.tick(env.deps)
    assert len(env.http.posts("/rollback")) == 1  # a failed stage stops the stages


def test_simultaneous_clicks_and_workers_run_the_action_once(env: Env) -> None:
    iid = open_incident(env)
    barrier = threading.Barrier(6)
    results = []

    def click() -> None:
        barrier.wait()
        results.append(flows.approve(env.deps, iid, "lock", "UIC"))

    def worker() -> None:
        barrier.wait()
        flows.run_due_actions(env.deps, iid)

    threads = [threading.Thread(target=click) for _ in range(3)] + [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.ok for r in results) == 1
    assert len(env.http.posts("/lock")) == 1
    with env.deps.store.session() as s:
        assert len(list(s.exec(select(Approval)))) == 1
        assert len(list(s.exec(select(ActionRun)))) == 1


def test_restart_resumes_without_repeating_steps_or_actions(env: Env) -> None:
    iid = open_incident(env)
    env.clock.advance(timedelta(hours=1))
    flows.tick(env.deps)
    flows.approve(env.deps, iid, "rollback", "UAPP1")
    flows.approve(env.deps, iid, "rollback", "USAFE")
    assert len(env.http.posts("/rollback")) == 1
    before = env.kinds(iid)

    after = env.restart()
    flows.tick(after.deps)
    assert after.kinds(iid) == before and after.notifier.events == []
    assert len(env.http.posts("/rollback")) == 1
    after.clock.advance(timedelta(minutes=10))
    flows.tick(after.deps)
    flows.tick(after.deps)
    assert [p.body["percent"] for p in env.http.posts("/rollback")] == ["10", "100"]
    after.clock.advance(timedelta(hours=1))
    after.restart()
    flows.tick(after.deps)
    assert after.kinds(iid).count("step.entered") == 3


def test_a_stage_left_running_by_a_dead_worker_is_resent_with_the_same_key(env: Env) -> None:
    iid = open_incident(env)
    with env.deps.store.session() as s:
        from rollback_bot.store import Approval as A

        s.add(
            A(incident_id=iid, action_id="lock", user_id="UIC", role="incident_commander", slot=0, at=env.clock.now())
        )
        s.add(
            ActionRun(
                incident_id=iid,
                action_id="lock",
                stage=100,
                idempotency_key="rollback-bot/test-release/1/lock/100",
                started_at=env.clock.now(),
            )
        )
        s.commit()
    after = env.restart()
    flows.tick(after.deps)
    assert env.http.posts("/lock") == []  # inside its lease, the first worker may still be sending
    after.clock.advance(timedelta(minutes=2))
    flows.tick(after.deps)
    [post] = env.http.posts("/lock")
    assert post.headers["Idempotency-Key"] == "rollback-bot/test-release/1/lock/100"
    assert after.kinds(iid)[-1] == "action.succeeded"


def test_a_stage_left_running_by_an_earlier_leader_is_resent_at_once_by_the_next(env: Env) -> None:
    """The next leading scheduler does not wait out the stage's lease: the leader that sent it acts no more (its
    token is older), so the stage goes again at once, under the same key; a leader's own stage keeps its lease."""
    iid = open_incident(env)

    def lead(holder: str) -> int:
        with env.deps.store.session() as s:
            s.execute(text("UPDATE leader_lease SET expires_at = :t"), {"t": env.clock.now() - timedelta(seconds=1)})
            token = leader.claim(s, holder=holder, now=env.clock.now(), period=timedelta(seconds=10))
            s.commit()
        assert token is not None
        return token

    first = lead("old")
    with env.deps.store.session() as s:
        s.add(
            Approval(
                incident_id=iid, action_id="lock", user_id="UIC", role="incident_commander", slot=0, at=env.clock.now()
            )
        )
        key = "rollback-bot/test-release/1/lock/100"
        s.add(
            ActionRun(
                incident_id=iid,
                action_id="lock",
                stage=100,
                idempotency_key=key,
                started_at=env.clock.now(),
                token=first,
            )
        )
        s.commit()
    after = env.restart()
    with leader.fencing(first):  # the same leader, restarted: inside its lease it may still be sending
        assert flows.next_step_due(after.deps) != after.clock.now()
        flows.tick(after.deps)
    assert env.http.posts("/lock") == []
    with leader.fencing(lead("new")):  # the next leader: due now, sent at once
        assert flows.next_step_due(after.deps) == after.clock.now()
        flows.tick(after.deps)
    [post] = env.http.posts("/lock")
    assert post.headers["Idempotency-Key"] == key
    assert after.kinds(iid)[-1] == "action.succeeded"


def test_an_incident_keeps_the_ladder_it_was_opened_under(env: Env) -> None:
    iid = open_incident(env)
    env.path.write_text(env.path.read_text().replace("name: Revert", "name: Renamed later"))
    after = env.restart()
    assert after.loaded.version != env.loaded.version
    after.clock.advance(timedelta(hours=1))
    flows.tick(after.deps)
    assert after.last("step.entered", iid).details["name"] == "Revert"


def test_resolve_is_for_the_commander_and_a_persisting_breach_opens_a_new_incident(env: Env) -> None:
    iid = open_incident(env)
    refused = flows.resolve(env.deps, iid, "UAPP1")
    assert not refused.ok and refused.message == "Only incident_commander may resolve this incident."
    assert flows.resolve(env.deps, iid, "UIC").ok
    assert not flows.resolve(env.deps, iid, "UIC").ok
    assert not flows.approve(env.deps, iid, "lock", "UIC").ok
    env.clock.advance(30)
    env.poll()
    assert [(i.id, i.status) for i in env.incidents()] == [(iid, "resolved"), (iid + 1, "open")]


def test_notes_keep_any_text(env: Env) -> None:
    iid = open_incident(env)
    text = 'the payload service is down "again" :fire: <@U123>'
    assert flows.add_note(env.deps, iid, "URESP", text).ok
    note = env.events(iid)[-1]
    assert (note.kind, note.details["text"], note.actor) == ("note", text, "URESP")
