"""The daily panic run on a fake clock, on SQLite and PostgreSQL: pass, fail naming what drifted, no data is a
failure, runs missed while the bot was down, and the acknowledgement of the pre-launch alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from rollback_bot.flows import panic
from rollback_bot.playbook import load_playbook
from rollback_bot.store.audit import playbook_events
from rollback_bot.store.models import Event, PanicRun
from tests.flows.conftest import Env

PANIC = 'panic_run: {at: "09:00", zone: Europe/Paris, checks: [errors < 0.01, latency < 800]}\n'
DAY1 = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 in Paris (summer time)


@pytest.fixture
def panic_env(env: Env) -> Env:
    env.path.write_text(env.path.read_text() + PANIC)
    env.loaded = load_playbook(env.path)
    env.clock.advance(DAY1 - timedelta(minutes=1) - env.clock.now())
    return env


def channel(env: Env) -> list[Event]:
    with env.deps.store.session() as s:
        return [e for e in playbook_events(s, playbook="test-release") if e.incident_id is None]


def runs(env: Env) -> list[PanicRun]:
    with env.deps.store.session() as s:
        return list(s.exec(select(PanicRun).order_by(col(PanicRun.day))))


def test_a_pass_is_posted_with_the_figures_once_a_day(panic_env: Env) -> None:
    env = panic_env
    assert panic.run_due(env.deps, env.loaded) == []  # 08:59 in Paris
    env.clock.advance(timedelta(seconds=75))
    [ev] = panic.run_due(env.deps, env.loaded)
    assert ev.kind == "panic.passed" and ev.incident_id is None
    assert ev.summary == "panic run 2026-03-30 09:00 Europe/Paris passed: errors=0 (< 0.01), latency=300 (< 800)"
    assert ev.details["checks"][1] == {"check": "latency < 800", "signal": "latency", "value": 300.0, "ok": True,
                                       "problem": ""}  # fmt: skip
    assert env.notifier.kinds() == ["panic.passed"]  # what Slack's sync is told: posted in the channel
    env.clock.advance(timedelta(hours=3))
    assert panic.run_due(env.deps, env.loaded) == []  # once a day
    env.clock.advance(timedelta(hours=21))
    assert [e.kind for e in panic.run_due(env.deps, env.loaded)] == ["panic.passed"]
    assert [(r.day, r.status) for r in runs(env)] == [("2026-03-30", "passed"), ("2026-03-31", "passed")]
    assert env.incidents() == []


def test_a_failure_names_what_drifted_and_what_it_cannot_see_and_is_no_incident(panic_env: Env) -> None:
    env = panic_env
    panic.run_due(env.deps, env.loaded)  # the bot is up before 09:00
    env.metrics["errors"] = 0.05
    del env.metrics["latency"]  # the source answers without it: no data, never a silent pass
    env.clock.advance(timedelta(minutes=2))
    [ev] = panic.run_due(env.deps, env.loaded)
    assert ev.kind == "panic.failed"
    assert ev.summary.startswith(
        "panic run 2026-03-30 09:00 Europe/Paris FAILED: errors = 0.05 (needs < 0.01); cannot see latency ("
    )
    [run] = runs(env)
    assert ev.summary.endswith(f"Pre-launch alert #{run.id}: acknowledge with `/rollback ack-panic {run.id}`")
    assert run.status == "failed" and run.acknowledged_by is None
    assert env.incidents() == []  # a pre-launch alert, not a rollback incident: no ladder


def test_the_alert_is_acknowledged_by_someone_allowed_with_who_and_when(panic_env: Env) -> None:
    env = panic_env
    playbooks = {"test-release": env.loaded}
    assert panic.acknowledge(env.deps, playbooks, "URESP", None).message == (
        "no pre-launch alert is waiting for an acknowledgement"
    )
    env.metrics["errors"] = 0.05
    env.clock.advance(timedelta(minutes=2))
    panic.run_due(env.deps, env.loaded)
    [run] = runs(env)
    refused = panic.acknowledge(env.deps, playbooks, "UX", None)
    assert not refused.ok and refused.message == (
        f"Only incident_commander or responder may acknowledge pre-launch alert #{run.id}."
    )
    env.clock.advance(timedelta(minutes=3))
    done = panic.acknowledge(env.deps, playbooks, "URESP", None)  # a responder through the SONCALL group
    assert done.ok and done.message == f"pre-launch alert #{run.id} (panic run of 2026-03-30) acknowledged"
    [run] = runs(env)
    assert run.acknowledged_by == "URESP" and run.acknowledged_at == DAY1 + timedelta(minutes=4)
    again = panic.acknowledge(env.deps, playbooks, "UIC", run.id)
    assert (
        not again.ok
        and again.message == f"pre-launch alert #{run.id} was already acknowledged by URESP at 07:04:00 UTC"
    )
    assert panic.acknowledge(env.deps, playbooks, "UIC", 999).message == "there is no pre-launch alert #999"
    ack = channel(env)[-1]
    assert (ack.kind, ack.actor, ack.role, ack.at) == ("panic.acknowledged", "URESP", "responder", run.acknowledged_at)
    assert (
        ack.summary == f"pre-launch alert #{run.id} (panic run of 2026-03-30) acknowledged by Rui (URESP) as responder"
    )
    assert [e.kind for e in channel(env)] == ["panic.failed", "panic.denied", "panic.acknowledged"]


def test_runs_missed_while_the_bot_was_down_are_reported_once_each(panic_env: Env) -> None:
    env = panic_env
    env.clock.advance(timedelta(minutes=2))
    assert [e.kind for e in panic.run_due(env.deps, env.loaded)] == ["panic.passed"]
    # the bot goes down after the 30th's run and comes back on 1 April at 11:30 in Paris
    env.clock.advance(datetime(2026, 4, 1, 9, 30, tzinfo=UTC) - env.clock.now())
    later = env.restart()
    missed = panic.run_due(later.deps, later.loaded)
    assert [e.summary for e in missed] == [
        "panic run of 2026-03-31 09:00 Europe/Paris missed: the bot did not run it (down or stuck then; "
        "noticed 2026-04-01 09:30 UTC); nothing was checked that day",
        "panic run of 2026-04-01 09:00 Europe/Paris missed: the bot did not run it (down or stuck then; "
        "noticed 2026-04-01 09:30 UTC); nothing was checked that day",
    ]
    assert later.notifier.kinds() == ["panic.missed", "panic.missed"]
    assert panic.run_due(later.deps, later.loaded) == []  # once per missed day
    assert panic.run_due(env.deps, env.loaded) == []  # and once across processes sharing the database
    assert [(r.day, r.status) for r in runs(env)] == [
        ("2026-03-30", "passed"), ("2026-03-31", "missed"), ("2026-04-01", "missed"),
    ]  # fmt: skip
    env.clock.advance(timedelta(days=1) - timedelta(hours=2, minutes=29))  # the 2nd, 09:01 in Paris: runs again
    assert [e.kind for e in panic.run_due(later.deps, later.loaded)] == ["panic.passed"]


def test_an_unacknowledged_failure_is_reminded_of_until_acknowledged(panic_env: Env) -> None:
    env = panic_env
    env.metrics["errors"] = 0.05
    env.clock.advance(timedelta(minutes=2))
    assert [e.kind for e in panic.run_due(env.deps, env.loaded)] == ["panic.failed"]
    env.clock.advance(timedelta(minutes=29))
    assert panic.run_due(env.deps, env.loaded) == []  # remind_every: 30m by default
    env.clock.advance(timedelta(minutes=1))
    [reminder] = panic.run_due(env.deps, env.loaded)
    [run] = runs(env)
    assert reminder.summary == (
        f"pre-launch alert #{run.id} (panic run of 2026-03-30) still unacknowledged after 30m: errors = 0.05 "
        f"(needs < 0.01). Acknowledge with `/rollback ack-panic {run.id}`"
    )
    assert panic.run_due(env.restart().deps, env.loaded) == []  # once per 30m, across processes too
    env.clock.advance(timedelta(minutes=30))
    assert [e.kind for e in panic.run_due(env.deps, env.loaded)] == ["panic.reminder"]
    assert panic.acknowledge(env.deps, {"test-release": env.loaded}, "UIC", None).ok
    env.clock.advance(timedelta(hours=2))
    assert panic.run_due(env.deps, env.loaded) == []  # acknowledged: no more reminders


def test_drift_from_the_baseline_fails_the_run_while_every_threshold_holds(env: Env) -> None:
    """Hidden drift: latency creeps up day after day, still under its 800 threshold; against the median of the
    passed runs of the last 7 days it has moved more than 25%, and the run says so."""
    drift = "  drift: {max_change: 0.25, days: 7, min_runs: 3}\n"
    panic_run = 'panic_run:\n  at: "09:00"\n  zone: Europe/Paris\n  checks: [errors < 0.01, latency < 800]\n'
    env.path.write_text(env.path.read_text() + panic_run + drift)
    env.loaded = load_playbook(env.path)
    env.clock.advance(DAY1 + timedelta(minutes=1) - env.clock.now())
    said = []
    for latency in (300.0, 310.0, 290.0, 305.0, 420.0):
        env.metrics["latency"] = latency
        said += panic.run_due(env.deps, env.loaded)
        env.clock.advance(timedelta(days=1))
    assert [e.kind for e in said] == ["panic.passed"] * 4 + ["panic.failed"]
    assert said[0].summary.endswith(
        "passed: errors=0 (< 0.01; 0 of 3 runs for a baseline), latency=300 (< 800; 0 of 3 runs for a baseline)"
    )
    assert said[3].summary.endswith("latency=305 (< 800; +2% from its 7-day baseline 300)")
    assert said[4].summary.startswith(
        "panic run 2026-04-03 09:00 Europe/Paris FAILED: latency = 420 drifted +39% from its 7-day baseline 302.5 "
        "(max 25%)"
    )
    assert "errors" not in said[4].summary.split("FAILED: ")[1].split(". Pre-launch")[0]  # errors stayed at 0
    assert runs(env)[-1].status == "failed"
