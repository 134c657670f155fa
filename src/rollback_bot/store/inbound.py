"""Signed Slack requests already taken: Slack signs each delivery once, so the same signature again is a
replay (an attacker, or a proxy resending) and must change nothing.

The signature is written in the same transaction as the first event the request records (audit.record calls
take_current), so a request is 'taken' exactly when what it did is: no extra transaction on a click's path,
and a replay's transaction rolls back whole. Requests that record nothing (help, a status read) change
nothing, replayed or not."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, delete, select

from rollback_bot.store.database import insert_for
from rollback_bot.store.models import InboundRequest


class Replayed(Exception):
    """This request was taken before: nothing it would do may happen again."""


@dataclass
class _Current:
    signature: str
    at: datetime
    taken: bool = False


_current: ContextVar[_Current | None] = ContextVar("inbound_request", default=None)


@contextmanager
def handling(signature: str, at: datetime) -> Iterator[None]:
    """While a signed request is handled (in this thread), the events it records take its signature."""
    token = _current.set(_Current(signature, at))
    try:
        yield
    finally:
        _current.reset(token)


def current_key() -> str | None:
    """The signature of the request being handled in this thread, if any (clicks are keyed by it)."""
    current = _current.get()
    return current.signature if current is not None else None


def take_current(session: Session) -> None:
    """Inside a recording transaction: take the request being handled, once; raise Replayed if it was taken
    before (the caller's transaction then rolls back)."""
    current = _current.get()
    if current is None or current.taken:
        return
    if not take(session, signature=current.signature, at=current.at):
        raise Replayed(f"request {current.signature[:16]}... was taken before")
    current.taken = True


def seen(conn: Connection, *, signature: str) -> bool:
    """Whether the request was taken before (one indexed read, before anything is done)."""
    return conn.execute(_SEEN, {"signature": signature}).first() is not None


_SEEN = select(col(InboundRequest.signature)).where(
    col(InboundRequest.signature) == bindparam("signature")
)  # built once


def take(session: Session, *, signature: str, at: datetime) -> bool:
    """Record the request; False when it was taken before (the caller commits)."""
    insert = insert_for(session)
    # RETURNING, not rowcount: through the ORM session, PostgreSQL's rowcount of this INSERT is -1 (true)
    # whether or not a row went in, which let concurrent replays all record
    stmt = (
        insert(InboundRequest)
        .values(signature=signature, at=at)
        .on_conflict_do_nothing(index_elements=["signature"])
        .returning(col(InboundRequest.signature))
    )
    return session.exec(stmt).first() is not None


def forget_before(session: Session, *, before: datetime) -> int:
    """Drop requests older than Slack's replay window: their timestamps are refused anyway."""
    return int(session.exec(delete(InboundRequest).where(col(InboundRequest.at) < before)).rowcount)
