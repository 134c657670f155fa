"""The scheduler lease: one holder at a time, taken over once it runs out, the token growing at each change;
and the fence: an acting write under a token that moved on records nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from rollback_bot.clock import FakeClock
from rollback_bot.leadership import Leadership
from rollback_bot.store import Event, Store, audit
from rollback_bot.store import leader as store_leader
from rollback_bot.store import slack_cursors as outbox
from rollback_bot.store.models import SlackCursor

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PERIOD = timedelta(seconds=10)


def _claim(store: Store, holder: str, now: datetime) -> int | None:
    with store.session() as s:
        token = store_leader.claim(s, holder=holder, now=now, period=PERIOD)
        s.commit()
    return token


def _record(store: Store) -> None:
    with store.session() as s:
        audit.record(s, playbook="pb", kind="signal.fired", at=T0, summary="acted")
        s.commit()


def _recorded(store: Store) -> int:
    with store.session() as s:
        return len(s.exec(select(Event)).all())


def test_one_holder_at_a_time_and_the_token_grows_at_each_change(store: Store) -> None:
    assert _claim(store, "a", T0) == 1
    assert _claim(store, "b", T0 + timedelta(seconds=1)) is None  # a holds it
    assert _claim(store, "a", T0 + timedelta(seconds=9)) == 1  # renewed: same token
    assert _claim(store, "b", T0 + timedelta(seconds=18)) is None  # a's renewal runs to 19 s
    assert _claim(store, "b", T0 + timedelta(seconds=20)) == 2  # ran out: taken over
    assert _claim(store, "a", T0 + timedelta(seconds=21)) is None  # the old holder stands by
    with store.session() as s:
        store_leader.release(s, holder="b", now=T0 + timedelta(seconds=22))
        s.commit()
    assert _claim(store, "a", T0 + timedelta(seconds=22)) == 3  # given up: taken at once
    with store.session() as s:
        lease = store_leader.current(s)
    assert lease is not None and (lease.holder, lease.token) == ("a", 3)
    assert lease.expires_at == T0 + timedelta(seconds=32)


def test_an_old_leader_that_wakes_up_records_nothing(store: Store) -> None:
    assert _claim(store, "a", T0) == 1
    with store_leader.fencing(1):
        _record(store)  # leading: recorded
    assert _claim(store, "b", T0 + timedelta(seconds=11)) == 2  # a was paused past its lease
    with store_leader.fencing(1), pytest.raises(store_leader.Fenced, match="acted under 1"):
        _record(store)
    assert _recorded(store) == 1
    with store_leader.fencing(2):
        _record(store)  # the new leader acts
    _record(store)  # a click or a command (no fence) records as always
    assert _recorded(store) == 3


def test_a_paused_leader_stops_acting_when_its_job_meets_the_fence(store: Store) -> None:
    clock = FakeClock(T0)
    a = Leadership(store, clock, period=PERIOD, holder="a")
    b = Leadership(store, clock, period=PERIOD, holder="b")
    assert a.try_once() == 1 and b.try_once() is None
    assert a.run(lambda: _record(store)) and b.run(lambda: _record(store)) is False
    clock.advance(timedelta(seconds=11))  # a is frozen (SIGSTOP) past its lease; b takes over
    assert b.try_once() == 2
    # a wakes up before its own monotonic deadline and runs the job it was in: the fence stops it
    assert a.leading() == 1
    a.run(lambda: _record(store))
    assert a.leading() is None  # and it knows it no longer leads
    assert _recorded(store) == 1
    assert b.run(lambda: _record(store))
    assert _recorded(store) == 2
    b.stop()  # gives the lease up: a takes it at its next try
    assert a.try_once() == 3


def test_slack_sync_leases_pass_to_the_next_leader_at_once_and_only_to_it(store: Store) -> None:
    """A sync lease taken under a leader's token goes to a later token at once; a token-less lease (a web
    process) and a lease of the same token only run out; a release under an old token frees nothing."""
    with store.session() as s:
        s.add(SlackCursor(playbook="pb"))
        s.commit()
    until = T0 + timedelta(seconds=60)

    def take(token: int | None, at: datetime = T0) -> bool:
        with store.session() as s:
            got = outbox.take_channel_lease(s, playbook="pb", now=at, until=until, token=token)
            s.commit()
        return got is not None

    def holder() -> int | None:
        with store.session() as s:
            cursor = s.get(SlackCursor, "pb")
            assert cursor is not None
            return cursor.lease_token

    assert take(3)
    assert not take(3) and not take(None) and not take(2)  # held: not by the same, a web process or an older
    assert take(4) and holder() == 4  # the next leader: at once
    with store.session() as s:  # the old one's release (it woke up) leaves the new holder's lease alone
        outbox.release_channel_lease(s, playbook="pb", token=3)
        s.commit()
    assert holder() == 4 and not take(None)
    with store.session() as s:
        outbox.release_channel_lease(s, playbook="pb", token=4)
        s.commit()
    assert take(None) and holder() is None
    assert not take(9)  # a web process's lease only runs out ...
    assert take(9, at=until + timedelta(seconds=1))  # ... and then anyone takes it
