"""Signals to incidents: open once, attach, escalate, no data never opens, step 1 announced with comms."""

from __future__ import annotations

from datetime import timedelta

from tests.flows.conftest import Env


def test_a_firing_trigger_opens_one_incident_with_step_one_and_its_evidence(env: Env) -> None:
    env.poll()
    assert env.incidents() == []
    env.clock.advance(30)
    env.metrics["errors"] = 0.02
    env.poll()
    [incident] = env.incidents()
    assert (incident.status, incident.severity, incident.trigger, incident.step_index) == (
        "open",
        "critical",
        "fatal",
        0,
    )
    assert incident.playbook_version == env.loaded.version
    assert incident.evidence["evidence"][0] == {
        "signal": "errors",
        "value": 0.02,
        "rule": "errors > 0",
        "breached": True,
        "at": env.clock.now().isoformat(),
        "note": "",
    }
    assert env.kinds() == ["signal.fired", "incident.opened", "step.entered"]
    step = env.events()[-1]
    assert step.details["name"] == "Flag" and step.details["late_by_seconds"] == 0
    assert [(w["signal"], w["status"]) for w in step.details["watch"]] == [("errors", "breached"), ("ack_time", "ok")]
    alert = step.details["comms"]["internal-alert"]
    assert "incident #1 (critical)" in alert and "Breached now: errors" in alert
    assert env.notifier.kinds()[-3:] == ["signal.fired", "incident.opened", "step.entered"]
    # further polls of the same breach do not open anything new
    for _ in range(3):
        env.clock.advance(30)
        env.poll()
    assert len(env.incidents()) == 1
    assert env.kinds() == ["signal.fired", "incident.opened", "step.entered"]


def test_other_triggers_attach_and_raise_severity(env: Env) -> None:
    env.metrics["latency"] = 900.0
    for _ in range(5):  # sustained 2m -> the minor 'slow' trigger opens the incident
        env.poll()
        env.clock.advance(30)
    [incident] = env.incidents()
    assert (incident.trigger, incident.severity) == ("slow", "minor")
    env.metrics["errors"] = 0.5
    env.poll()
    [incident] = env.incidents()
    assert incident.severity == "critical"
    attached = [e for e in env.events() if e.kind == "trigger.attached"]
    assert len(attached) == 1 and attached[0].details["trigger"] == "fatal"
    assert "fatal also fired (critical)" in attached[0].summary


def test_no_data_never_opens_an_incident_and_a_lost_signal_is_reported(env: Env) -> None:
    env.http.routes["/kpi"] = (500, {"error": "monitor down"})
    for _ in range(10):
        env.poll()
        env.clock.advance(30)
    assert env.incidents() == []
    from sqlmodel import col, select

    from rollback_bot.store import Event

    with env.deps.store.session() as s:
        lost = list(s.exec(select(Event).where(Event.kind == "signal.lost").order_by(col(Event.id))))
    assert sorted(e.details["signal"] for e in lost) == ["errors", "latency"]  # once each, after 2 failures
    assert "HTTP 500" in lost[0].summary
    env.http.routes["/kpi"] = lambda rec: (200, env.metrics)
    env.poll()
    with env.deps.store.session() as s:
        restored = list(s.exec(select(Event).where(Event.kind == "signal.restored")))
    assert len(restored) == 2


def test_garbage_and_nan_are_no_data_not_healthy(env: Env) -> None:
    env.metrics["errors"] = 0.3
    env.metrics["latency"] = "NaN"
    env.poll()
    assert len(env.incidents()) == 1
    watch = env.events()[-1].details["watch"]
    assert watch[0]["status"] == "breached"
    env.metrics["errors"] = "garbage"
    env.clock.advance(timedelta(minutes=61))
    env.poll()
    from rollback_bot import flows

    flows.tick(env.deps)
    step2 = env.last("step.entered")
    assert step2.details["name"] == "Revert" and step2.details["watch"][0]["status"] == "nodata"


def test_readings_past_retention_are_deleted(env: Env) -> None:
    from sqlmodel import select

    from rollback_bot.flows.readings import prune
    from rollback_bot.store import ReadingRow

    env.poll()
    env.clock.advance(timedelta(days=2))
    env.poll()
    assert prune(env.deps, timedelta(days=1)) == 3  # the first poll's three signals
    with env.deps.store.session() as s:
        assert {r.at for r in s.exec(select(ReadingRow))} == {env.clock.now()}
