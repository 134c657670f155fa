"""The bot says when it cannot see: silent and vanished signals, polling behind, blind gates; and it does not
flap. Through the real flows, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlmodel import col, select

from rollback_bot import flows
from rollback_bot.rules.polling import poll_groups
from rollback_bot.store import Event, watching
from tests.flows.conftest import Env

FATAL = "  fatal: {when: errors > 0, severity: critical}\n"
SLOW = "  slow: {when: latency > 800, for: 2m, severity: minor}\n"


def with_triggers(env: Env, triggers: str) -> Env:
    """The same playbook with other triggers, in a new process."""
    text = env.path.read_text()
    env.path.write_text(text.replace(FATAL + SLOW, triggers))
    return env.restart()


def channel_events(env: Env) -> list[Event]:
    """Playbook-level events (no incident open): they go to the playbook's channel."""
    with env.deps.store.session() as s:
        query = select(Event).where(Event.playbook == "test-release", col(Event.incident_id).is_(None))
        return list(s.exec(query.order_by(col(Event.id))))


def poll_group(env: Env) -> None:
    """Poll as the scheduler does: the group's start and finish are recorded."""
    [group] = poll_groups(env.loaded.playbook)
    flows.poll(env.deps, env.loaded, list(group.signals), group=group)


def test_a_vanished_series_is_announced_once_then_restored(env: Env) -> None:
    env.metrics["latency"] = None  # the monitor answers, without a value
    for _ in range(8):
        env.poll()
        env.clock.advance(30)
    silent = [e for e in channel_events(env) if e.kind == "signal.silent"]
    assert len(silent) == 1, "once per episode"
    assert (
        silent[0].summary == "signal silent: latency answered without data 5 times in a row (last: 'latency' is null)"
    )
    env.metrics["latency"] = 300.0
    env.poll()
    assert channel_events(env)[-1].summary == "signal restored: latency = 300 (was silent for 8 reads)"
    assert env.notifier.kinds().count("signal.silent") == 1


def test_silence_during_an_incident_goes_to_its_thread(env: Env) -> None:
    env.metrics["errors"] = 0.5
    env.poll()
    env.metrics["latency"] = None
    for _ in range(5):
        env.clock.advance(30)
        env.poll()
    assert "signal.silent" in env.kinds(1)


def test_stalled_polling_is_announced_once_and_restored(env: Env) -> None:
    since = env.clock.now()
    poll_group(env)
    env.clock.advance(60)
    assert flows.check_polling(env.deps, [env.loaded], since) == []  # two intervals: still on time
    env.clock.advance(1)
    [behind] = flows.check_polling(env.deps, [env.loaded], since)
    assert behind.kind == "polling.behind" and behind.incident_id is None
    assert behind.summary == "polling behind: 3 signal(s) of test-release polled every 30s: no complete poll for 1m1s"
    env.clock.advance(60)
    assert flows.check_polling(env.deps, [env.loaded], since) == []
    assert flows.check_polling(env.restart().deps, [env.loaded], since) == [], "once, across processes"
    poll_group(env)
    [restored] = flows.check_polling(env.deps, [env.loaded], since)
    assert restored.kind == "polling.restored" and restored.summary.startswith(
        "polling restored: 3 signal(s) of test-release polled every 30s, last poll took"
    )
    assert [e.kind for e in channel_events(env)] == ["polling.behind", "polling.restored"]


def test_a_poll_that_never_finishes_is_named_in_the_incident_thread(env: Env) -> None:
    env.metrics["errors"] = 0.5
    poll_group(env)
    since = env.clock.now()
    env.clock.advance(1)
    with env.deps.store.session() as s:  # a poll starts, and hangs
        watching.poll_started(s, playbook="test-release", group="30s", every_s=30, signals=3, at=env.clock.now())
        s.commit()
    env.clock.advance(90)
    [behind] = flows.check_polling(env.deps, [env.loaded], since)
    assert behind.incident_id == 1
    assert "a poll started at 09:00:01 has not finished, no complete poll for 1m31s" in behind.summary


def test_flapping_attaches_and_clears_at_most_once_with_keep_firing_for(env: Env) -> None:
    env = with_triggers(env, "  fatal: {when: errors > 0, severity: critical, keep_firing_for: 5m}\n" + SLOW)
    for i in range(20):
        env.metrics["errors"] = 0.05 if i % 2 == 0 else 0.0
        env.poll()
        env.clock.advance(30)
    assert env.kinds().count("signal.cleared") == 0 and env.kinds().count("trigger.attached") == 0
    env.metrics["errors"] = 0.0
    for _ in range(11):
        env.poll()
        env.clock.advance(30)
    assert env.kinds().count("signal.cleared") == 1


def test_without_damping_the_same_signal_flaps(env: Env) -> None:
    for i in range(20):
        env.metrics["errors"] = 0.05 if i % 2 == 0 else 0.0
        env.poll()
        env.clock.advance(30)
    assert env.kinds().count("signal.cleared") == 10 and env.kinds().count("trigger.attached") == 9


def test_no_data_hold_says_the_gate_is_blind_once_and_opens_nothing(env: Env) -> None:
    env = with_triggers(env, FATAL + "  slow: {when: latency > 800, no_data: hold, no_data_for: 1m}\n")
    env.metrics["latency"] = None
    for _ in range(6):
        env.poll()
        env.clock.advance(30)
    assert env.incidents() == []
    blind = [e for e in channel_events(env) if e.kind == "trigger.blind"]
    assert len(blind) == 1
    assert "slow cannot see: HOLD" in blind[0].summary and "no data for 1m" in blind[0].summary
    env.metrics["latency"] = 300.0
    env.poll()
    assert channel_events(env)[-1].kind == "trigger.sighted"


def test_no_data_breach_opens_an_incident_once_no_data_lasted(env: Env) -> None:
    env = with_triggers(env, FATAL + "  slow: {when: latency > 800, no_data: breach, no_data_for: 2m}\n")
    env.metrics["latency"] = None
    for _ in range(4):
        env.poll()
        env.clock.advance(30)
    assert env.incidents() == []
    env.poll()  # 2m without data
    [incident] = env.incidents()
    assert incident.trigger == "slow"
    fired = env.events()[0]
    assert fired.kind == "signal.fired" and "no data for 2m: counted as a breach (no_data: breach)" in fired.summary


def test_breaches_n_of_m_are_counted_across_restarts(env: Env) -> None:
    env = with_triggers(env, FATAL + "  slow: {when: latency > 800, breaches: 3 of 5}\n")
    for i, latency in enumerate([900.0, 300.0, 900.0, 300.0, 900.0]):
        env.metrics["latency"] = latency
        env.poll()
        env.clock.advance(30)
        if i == 2:
            assert env.incidents() == []
            env = env.restart()  # the count lives in the database
    [incident] = env.incidents()
    assert incident.trigger == "slow"
    assert "breached in 3 of the last 5 evaluations" in env.events()[0].summary


def test_a_gap_while_no_scheduler_ran_is_recorded_at_start_up(env: Env) -> None:
    poll_group(env)
    env.clock.advance(300)  # the bot was down (killed, redeployed) for five minutes
    [behind] = flows.check_polling(env.deps, [env.loaded], None)  # a scheduler starting: the real gap
    assert behind.summary == "polling behind: 3 signal(s) of test-release polled every 30s: no complete poll for 5m"
    poll_group(env)
    [restored] = flows.check_polling(env.deps, [env.loaded], env.clock.now())
    assert restored.kind == "polling.restored"


def test_a_process_that_just_started_does_not_declare_polling_restored(env: Env) -> None:
    since = env.clock.now()
    poll_group(env)
    env.clock.advance(120)
    [behind] = flows.check_polling(env.deps, [env.loaded], since)
    assert behind.kind == "polling.behind"
    web = env.restart()  # a web process starting now has missed nothing itself, but the scheduler is still away
    assert flows.check_polling(web.deps, [web.loaded], env.clock.now()) == []
    [status] = flows.polling_status(web.deps, [web.loaded], env.clock.now())
    assert status.unhealthy and not status.behind
    env.clock.advance(60)
    assert flows.check_polling(web.deps, [web.loaded], since) == []


def test_a_never_polled_group_is_not_behind_on_a_first_start(env: Env) -> None:
    assert flows.check_polling(env.deps, [env.loaded], None) == []
