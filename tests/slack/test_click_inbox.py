"""Clicks are durable, then acknowledged, then done (slack/clicks.py): the 200 does not wait for what the click
does; a click taken by a process that died is worked off by another once its lease runs out; two processes
on the same click record it once; a click that keeps failing is answered with the failure, not retried forever."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from rollback_bot.slack import clicks as clicks_module
from rollback_bot.slack import inbound
from rollback_bot.slack.clicks import LEASE, ClickDesk
from rollback_bot.store import Approval, Event
from rollback_bot.store import inbox as store_inbox
from rollback_bot.store.models import ClickInbox
from tests.slack.conftest import SlackEnv


def a_click(action_id: str, user: str, incident: int = 1) -> inbound.Click:
    return inbound.click(
        {
            "type": "block_actions",
            "user": {"id": user},
            "channel": {"id": "COPS"},
            "container": {"type": "message", "message_ts": "1001.000100", "channel_id": "COPS"},
            "actions": [{"action_id": action_id, "value": json.dumps({"i": incident}), "type": "button"}],
        }
    )


def events(env: SlackEnv, kind: str) -> list[Event]:
    with env.deps.store.session() as s:
        return list(s.exec(select(Event).where(Event.kind == kind)).all())


def rows(env: SlackEnv) -> list[ClickInbox]:
    with env.deps.store.session() as s:
        return list(s.exec(select(ClickInbox)).all())


def test_the_200_comes_before_the_work_and_the_click_is_in_the_inbox(
    slack_env: SlackEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = slack_env
    env.open_incident()
    gate = threading.Event()
    real = clicks_module.flows.approve  # type: ignore[attr-defined]  # patched where the module looks it up

    def slow_approve(*args: Any, **kw: Any) -> Any:
        assert gate.wait(10), "the test never let the approval through"
        return real(*args, **kw)

    monkeypatch.setattr(clicks_module.flows, "approve", slow_approve)  # type: ignore[attr-defined]
    assert env.click("approve:lock", "UIC").status_code == 200  # answered while the approval is held back
    taken = rows(env)
    assert len(taken) == 1 and taken[0].done_at is None
    assert events(env, "approval") == [] and not env.slack.ephemerals("UIC")
    gate.set()
    answer = env.wait_for(lambda: env.slack.ephemerals("UIC"))[0].params["text"]
    assert answer.startswith(":white_check_mark: Approved 'Lock'"), answer
    assert len(events(env, "approval")) == 1
    done = env.wait_for(lambda: [r for r in rows(env) if r.done_at is not None])
    assert done[0].answer == answer and done[0].attempts == 1


def test_a_click_nobody_worked_off_is_done_by_the_next_sweep_once(slack_env: SlackEnv) -> None:
    """A web-only process takes the click (the scheduler process normally works it off): here that process is
    gone before doing so; a sweep elsewhere records it once and answers the clicker."""
    env = slack_env
    env.open_incident()
    rt = env.service.desk.rt
    web = ClickDesk(rt, here=False)
    assert web.take(a_click("ack", "URESP"))
    assert events(env, "ack") == [] and rows(env)[0].done_at is None
    other = ClickDesk(rt, here=False)
    assert other.sweep(timedelta(0)) == 1
    env.service.drain()
    assert len(events(env, "ack")) == 1
    assert [c.params["text"] for c in env.slack.ephemerals("URESP")] == [":white_check_mark: Acknowledged incident #1"]
    assert other.sweep(timedelta(0)) == 0  # done: nobody works it off again
    assert len(events(env, "ack")) == 1


def test_a_click_held_by_a_dead_process_waits_for_its_lease_then_is_done_once(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    rt = env.service.desk.rt
    assert ClickDesk(rt, here=False).take(a_click("approve:lock", "UIC"))
    key = rows(env)[0].key
    with env.deps.store.session() as s:  # a process claims it, then is killed before recording anything
        assert store_inbox.claim(s, key=key, by="dead:1", now=env.clock.now(), lease=LEASE) is not None
        s.commit()
    survivor = ClickDesk(rt, here=False)
    assert survivor.sweep(timedelta(0)) == 0  # the lease still holds
    env.clock.advance(LEASE + timedelta(seconds=1))
    assert survivor.sweep(timedelta(0)) == 1
    env.service.drain()
    with env.deps.store.session() as s:
        assert [(a.user_id, a.action_id) for a in s.exec(select(Approval))] == [("UIC", "lock")]
    assert len(events(env, "approval")) == 1
    assert rows(env)[0].attempts == 2 and rows(env)[0].claimed_by == survivor.me


def test_two_processes_on_the_same_click_record_it_once(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    rt = env.service.desk.rt
    assert ClickDesk(rt, here=False).take(a_click("ack", "URESP"))
    key = rows(env)[0].key
    first, second = ClickDesk(rt, here=False), ClickDesk(rt, here=False)
    with env.deps.store.session() as s:  # the first holds it; its lease runs out while it is still at work
        store_inbox.claim(s, key=key, by=first.me, now=env.clock.now(), lease=LEASE)
        s.commit()
    env.clock.advance(LEASE + timedelta(seconds=1))
    second.work(key)  # takes it over and records the acknowledgement
    first_row = rows(env)[0]
    assert first_row.claimed_by == second.me and first_row.done_at is not None
    with env.deps.store.session() as s:  # the first now tries to finish: it no longer holds the click
        assert not store_inbox.finish(s, key=key, by=first.me, now=env.clock.now(), answer="late")
    env.service.drain()
    assert len(events(env, "ack")) == 1
    assert len(env.slack.ephemerals("URESP")) == 1


def test_a_replayed_click_is_taken_once(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    desk = env.service.desk
    from rollback_bot.store import inbound as store_inbound

    click = a_click("ack", "URESP")
    with store_inbound.handling("v0=same-signature", env.clock.now()):
        assert desk.take(click)
    with store_inbound.handling("v0=same-signature", env.clock.now()):
        assert not desk.take(click)
    env.service.drain()
    assert len(rows(env)) == 1 and len(events(env, "ack")) == 1


def test_a_click_that_keeps_failing_is_answered_with_the_failure_after_three_tries(
    slack_env: SlackEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = slack_env
    env.open_incident()
    rt = env.service.desk.rt

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(clicks_module.flows, "acknowledge", broken)  # type: ignore[attr-defined]
    desk = ClickDesk(rt, here=False)
    assert desk.take(a_click("ack", "URESP"))
    for _ in range(2):
        assert desk.sweep(timedelta(0)) == 1
        assert rows(env)[0].done_at is None  # tried again once the lease runs out
        assert desk.sweep(timedelta(0)) == 0
        env.clock.advance(LEASE + timedelta(seconds=1))
    assert desk.sweep(timedelta(0)) == 1
    env.service.drain()
    row = rows(env)[0]
    assert row.done_at is not None and row.attempts == 3
    told = [c.params["text"] for c in env.slack.ephemerals("URESP")]
    assert len(told) == 3
    assert told[0].startswith(":warning: Something went wrong; it is logged as `")
    assert told[0].endswith("`. I will try again in 15 s (try 1 of 3).") and told[1].endswith("(try 2 of 3).")
    assert told[2].endswith("`. Nothing was recorded: try again.")
    assert events(env, "ack") == []


def test_done_clicks_are_dropped_after_a_day_and_waiting_ones_never(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    desk = env.service.desk
    assert env.click("ack", "URESP").status_code == 200
    env.wait_for(lambda: env.slack.ephemerals("URESP"))
    env.service.drain()
    assert ClickDesk(desk.rt, here=False).take(a_click("ack", "UIC"))  # nobody works this one off
    env.clock.advance(timedelta(hours=23))
    assert desk.forget_done() == 0
    env.clock.advance(timedelta(hours=2))
    assert desk.forget_done() == 1
    [left] = rows(env)
    assert left.done_at is None  # a click not done yet is never dropped
