"""The leader lease: which scheduler process acts (polls, evaluates, walks ladders, runs actions, syncs Slack)
and until when. Any number of scheduler processes may run; the one holding the lease acts, the others stand by
and take it over once it expires (the holder died, hangs, or lost the database).

Fencing: the token grows at each change of holder. While a scheduler job runs, `fencing(token)` is set, and
every acting write (audit.record, which every incident, step, action stage and verdict goes through; the Slack
sync's claim of a post) calls `check_current` in its own transaction: on PostgreSQL it reads the lease row
FOR SHARE, so a takeover waits for that transaction and a write after a takeover sees the new token and rolls
back (Fenced). A paused old leader that wakes up therefore cannot double anything. On SQLite the transaction's
snapshot gives the same guarantee: a write after another process's takeover fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, text
from sqlmodel import Session

from rollback_bot.store.models import LeaderLease
from rollback_bot.store.types import UTCDateTime

SCHEDULER = "scheduler"


class Fenced(Exception):
    """This process no longer holds the lease it acted under: its transaction must not commit."""


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    token: int
    acquired_at: datetime
    expires_at: datetime


WHEN = UTCDateTime(timezone=True)
# Takes the lease when it is free, ours, or expired; the token grows when the holder changes or ours had run out.
_CLAIM = text(
    """
    INSERT INTO leader_lease (name, holder, token, acquired_at, expires_at)
    VALUES (:name, :holder, 1, :now, :until)
    ON CONFLICT (name) DO UPDATE SET
        token = CASE WHEN leader_lease.holder = excluded.holder AND leader_lease.expires_at > :now
                     THEN leader_lease.token ELSE leader_lease.token + 1 END,
        acquired_at = CASE WHEN leader_lease.holder = excluded.holder AND leader_lease.expires_at > :now
                           THEN leader_lease.acquired_at ELSE excluded.acquired_at END,
        holder = excluded.holder,
        expires_at = excluded.expires_at
    WHERE leader_lease.holder = excluded.holder OR leader_lease.expires_at <= :now
    RETURNING token
    """
)


CLAIM = _CLAIM.bindparams(bindparam("now", type_=WHEN), bindparam("until", type_=WHEN))
RELEASE = text("UPDATE leader_lease SET expires_at = :now WHERE name = :name AND holder = :holder").bindparams(
    bindparam("now", type_=WHEN)
)
HELD = text("SELECT token FROM leader_lease WHERE name = :name")
HELD_LOCKED = text("SELECT token FROM leader_lease WHERE name = :name FOR SHARE")


def claim(session: Session, *, holder: str, now: datetime, period: timedelta, name: str = SCHEDULER) -> int | None:
    """Take or renew the lease until now + period; its token, or None while another holds it. The caller
    commits."""
    row = session.execute(CLAIM, {"name": name, "holder": holder, "now": now, "until": now + period}).first()
    return int(row[0]) if row is not None else None


def release(session: Session, *, holder: str, now: datetime, name: str = SCHEDULER) -> None:
    """Give the lease up (a clean shutdown): a standby takes it at its next try, not after the lease runs out."""
    session.execute(RELEASE, {"now": now, "name": name, "holder": holder})


def current(session: Session, name: str = SCHEDULER) -> Lease | None:
    row = session.get(LeaderLease, name, populate_existing=True)
    if row is None:
        return None
    return Lease(row.name, row.holder, row.token, row.acquired_at, row.expires_at)


_fence: ContextVar[tuple[str, int] | None] = ContextVar("leader_fence", default=None)


@contextmanager
def fencing(token: int, name: str = SCHEDULER) -> Iterator[None]:
    """While a scheduler job runs under the lease's `token`, its acting writes check that token."""
    mark = _fence.set((name, token))
    try:
        yield
    finally:
        _fence.reset(mark)


def acting_token(name: str = SCHEDULER) -> int | None:
    """The token the running scheduler job acts under, or None outside one."""
    fence = _fence.get()
    return fence[1] if fence is not None and fence[0] == name else None


def check_current(session: Session) -> None:
    """Inside an acting transaction: raise Fenced when the lease this job runs under has passed to another
    process (or its token moved on). Outside a scheduler job (a click, a command, the CLI) it checks nothing."""
    fence = _fence.get()
    if fence is None:
        return
    name, token = fence
    stmt = HELD_LOCKED if session.get_bind().dialect.name == "postgresql" else HELD
    got = session.execute(stmt, {"name": name}).first()
    if got is None or int(got[0]) != token:
        raise Fenced(f"the {name} lease moved on (token {got[0] if got else None}, acted under {token})")
