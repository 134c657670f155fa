"""Two syncers, one lease: an event recorded while another syncer (process) holds the incident's lease is
posted when that syncer is done, not at the next minute's catch-up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from rollback_bot.slack.sync import LEASE
from rollback_bot.store import audit, leader
from rollback_bot.store import slack_cursors as outbox
from rollback_bot.store.models import Incident
from tests.slack.conftest import SlackEnv


def test_an_event_recorded_during_someone_elses_sync_is_posted_when_it_is_done(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    env.settle()
    sync = env.service.sync
    call = sync._call
    calls: list[str] = []

    def meanwhile(method: str, **kwargs: Any) -> dict[str, Any]:
        calls.append(method)
        if len(calls) == 1:  # mid-sync, another process records a note; its own sync finds the lease taken
            with env.deps.store.session() as s:
                audit.record(
                    s,
                    playbook="test-release",
                    incident_id=1,
                    kind="note",
                    at=env.deps.now(),
                    summary="note by Rui: from another process",
                    actor="URESP",
                )
                s.commit()
            sync.sync_incident(1)  # as that process would: the lease is taken, so it gives up
        return call(method, **kwargs)

    env.settle()
    sync._call = meanwhile  # type: ignore[method-assign]
    with env.deps.store.session() as s:  # a pending event for this sync to take: the note's turn comes after
        audit.record(s, playbook="test-release", incident_id=1, kind="note", at=env.deps.now(), summary="note 1")
        s.commit()
    sync.sync_incident(1)
    posted = [str(c.params.get("text")) for c in env.slack.thread()]
    assert any("note 1" in t for t in posted)
    assert any("from another process" in t for t in posted)


def _note(env: SlackEnv, text: str) -> None:
    with env.deps.store.session() as s:
        audit.record(s, playbook="test-release", incident_id=1, kind="note", at=env.deps.now(), summary=text)
        s.commit()


def _lease(env: SlackEnv) -> tuple[Any, Any]:
    with env.deps.store.session() as s:
        incident = s.get(Incident, 1)
        assert incident is not None
        return incident.slack_lease_until, incident.slack_lease_token


def _lead(env: SlackEnv, holder: str) -> int:
    with env.deps.store.session() as s:
        token = leader.claim(s, holder=holder, now=env.deps.now(), period=timedelta(seconds=10))
        s.commit()
    assert token is not None
    return token


def test_the_next_leader_takes_a_dead_leaders_sync_lease_over_at_once(slack_env: SlackEnv) -> None:
    """A leader killed mid-sync leaves the incident's lease (60 s) behind: the next leader takes it over at
    once, posts what was missing, and gives it back; a web process's lease (no token) only runs out."""
    env = slack_env
    env.open_incident()
    env.settle()
    sync = env.service.sync
    first = _lead(env, "old")
    with env.deps.store.session() as s:  # the old leader took the lease, then died
        assert outbox.take_incident_lease(
            s, incident_id=1, now=env.deps.now(), until=env.deps.now() + LEASE, token=first
        )
        s.commit()
    _note(env, "note while the old leader lay dead")
    with env.deps.store.session() as s:  # its lease ran out (as the lease table's clock says) and "new" took over
        s.execute(text("UPDATE leader_lease SET expires_at = :t"), {"t": env.deps.now() - timedelta(seconds=1)})
        s.commit()
    second = _lead(env, "new")
    assert second > first
    sync.leading = lambda: second
    sync.sync_incident(1)
    assert any("lay dead" in str(c.params.get("text")) for c in env.slack.thread())
    assert _lease(env) == (None, None)  # given back

    # a web process's lease has no token: even the leader waits for it to run out
    with env.deps.store.session() as s:
        assert outbox.take_incident_lease(s, incident_id=1, now=env.deps.now(), until=env.deps.now() + LEASE)
        s.commit()
    _note(env, "note under a web process's lease")
    sync.sync_incident(1)
    assert not any("web process" in str(c.params.get("text")) for c in env.slack.thread())
    env.clock.advance(LEASE + timedelta(seconds=1))
    sync.sync_incident(1)
    assert any("web process" in str(c.params.get("text")) for c in env.slack.thread())


def test_a_leader_that_stopped_leading_mid_sync_calls_slack_no_more(slack_env: SlackEnv) -> None:
    """Frozen mid-sync and thawed after another took over: the old leader's sync stops before its next Slack call,
    and its release leaves the new holder's lease alone."""
    env = slack_env
    env.open_incident()
    env.settle()
    sync = env.service.sync
    first = _lead(env, "old")
    leading: list[int | None] = [first]
    sync.leading = lambda: leading[0]
    call = sync._call
    calls: list[str] = []

    def frozen(method: str, **kwargs: Any) -> dict[str, Any]:
        calls.append(method)
        if len(calls) == 1:  # frozen here; meanwhile "new" leads and takes the lease over
            with env.deps.store.session() as s:
                s.execute(text("UPDATE leader_lease SET expires_at = :t"), {"t": env.deps.now() - timedelta(seconds=1)})
                s.commit()
            second = _lead(env, "new")
            with env.deps.store.session() as s:
                until = env.deps.now() + LEASE
                assert outbox.take_incident_lease(s, incident_id=1, now=env.deps.now(), until=until, token=second)
                s.commit()
            leading[0] = None  # thawed: its last renewal is too old, so it no longer leads
        return call(method, **kwargs)

    sync._call = frozen  # type: ignore[method-assign]
    _note(env, "one")
    _note(env, "two")
    before = len(env.slack.thread())
    with pytest.raises(leader.Fenced):
        sync.sync_incident(1)
    assert len(env.slack.thread()) - before <= 1  # the call already under way when it froze, and no more
    assert len(calls) == 1
    assert _lease(env)[1] == first + 1  # the new leader's lease stands
