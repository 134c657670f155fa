"""Check hash chains: recompute every event's hash and name the first event that does not match."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from rollback_bot.forked import in_fork
from rollback_bot.store.chain import GENESIS, content_hash, incident_chain
from rollback_bot.store.models import ChainHead, Event
from rollback_bot.store.stream import raw, rows


@dataclass(frozen=True)
class ChainReport:
    chain: str
    events: int
    final_hash: str
    problem: str | None = None  # None: intact
    event_id: int | None = None  # the first event that does not match

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if self.ok:
            return f"{self.chain}: {self.events} events, chain intact, final hash {self.final_hash}"
        return f"{self.chain}: BROKEN: {self.problem}"


def verify_chain(session: Session, chain: str) -> ChainReport:
    """Streamed: one pass over the chain in batches, each event checked against the one before it."""
    table = Event.__table__  # type: ignore[attr-defined]
    c = table.c
    stmt = (
        sa.select(c.id, c.seq, c.prev_hash, c.incident_id, c.playbook, raw(c.at), c.kind, c.actor, c.role)
        .add_columns(c.summary, raw(c.details), c.hash)
        .where(c.chain == chain)
        .order_by(c.seq, c.id)
    )
    prev, expected, count = GENESIS, 1, 0
    for event_id, seq, prev_hash, incident_id, playbook, at, kind, actor, role, summary, details, digest in rows(
        session, stmt
    ):
        count += 1
        if seq != expected:
            what = "is missing (deleted)" if seq > expected else "appears twice"
            problem = f"event no. {expected} of the chain {what}; next is {_where(event_id, seq, kind, at)}"
            return ChainReport(chain, count, prev, problem, event_id)
        if prev_hash != prev:
            where = _where(event_id, seq, kind, at)
            return ChainReport(chain, count, prev, f"{where} does not follow the event before it (reordered)", event_id)
        try:
            recomputed = content_hash(
                chain=chain,
                seq=seq,
                prev_hash=prev_hash,
                incident_id=incident_id,
                playbook=playbook,
                at_iso=_iso(at),
                kind=kind,
                actor=actor,
                role=role,
                summary=summary,
                details=json.loads(details) if isinstance(details, str | bytes) else details,
            )
        except ValueError:  # a time or JSON no writer of ours stores
            recomputed = None
        if recomputed != digest:
            where = _where(event_id, seq, kind, at)
            return ChainReport(chain, count, prev, f"{where} was changed after it was written", event_id)
        prev, expected = digest, expected + 1
    head = session.get(ChainHead, chain)
    if head is not None and (head.seq, head.hash) != (expected - 1, prev):
        missing = head.seq - (expected - 1)
        return ChainReport(chain, count, prev, f"the newest {missing} event(s) of the chain are missing (deleted)")
    return ChainReport(chain, count, prev)


def _iso(at: str | datetime) -> str:
    """A stored time as the hash has it: ISO 8601 UTC with microseconds. SQLite's own text (naive UTC,
    `2026-03-01 09:00:00.864000`) is rewritten without parsing."""
    if isinstance(at, str):
        if len(at) == 26 and at[10] == " " and at[19] == ".":
            return f"{at[:10]}T{at[11:]}+00:00"
        at = datetime.fromisoformat(at)
    if at.tzinfo is None:  # SQLite keeps UTC without its zone
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _where(event_id: int, seq: int, kind: str, at: str | datetime) -> str:
    try:
        shown = f"{datetime.fromisoformat(_iso(at)):%Y-%m-%d %H:%M:%S} UTC"
    except ValueError:
        shown = f"{at!r} (not a time)"
    return f"event #{event_id} (no. {seq} of the chain, {kind} at {shown})"


def verify_in_background(engine: Engine, chain: str) -> Callable[[], ChainReport]:
    """verify_chain in a forked process on its own connection (the CLI's export --verify: the check runs on
    the other core while the export is gathered); the returned function waits for the report."""

    parent = os.getpid()

    def work() -> ChainReport:
        if os.getpid() != parent:
            engine.dispose(close=False)  # in the child: the parent's pooled connections stay the parent's
        with Session(engine) as session:
            return verify_chain(session, chain)

    return in_fork(work)


def chains(session: Session, incident_id: int | None = None) -> list[str]:
    if incident_id is not None:
        return [incident_chain(incident_id)]
    found = set(session.exec(select(ChainHead.chain))) | set(session.exec(select(Event.chain).distinct()))
    return sorted(found, key=lambda c: (c.split(":")[0], int(c.split(":")[1]) if c.startswith("incident:") else 0, c))
