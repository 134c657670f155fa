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
from rollback_bot.store.database import own_session
from rollback_bot.store.models import ChainHead, Event
from rollback_bot.store.stream import halfway, raw, rows, sqlite_time


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


def verify_chain(session: Session, chain: str, engine: Engine | None = None) -> ChainReport:
    """Streamed: one pass over the chain in batches, each event checked against the one before it, then the
    chain head against the last. `engine` (single-threaded callers: the CLI): a long chain's second half is
    checked in a forked process on its own connection meanwhile, and the report is the one a single pass
    gives."""
    middle = halfway(session, chain) if engine is not None else None
    if engine is None or middle is None:
        return _report(chain, [_check(session, chain, None, None)])
    parent = os.getpid()

    def second_half() -> _Part:
        with own_session(engine, parent) as own:
            return _check(own, chain, middle, None)

    rest = in_fork(second_half)
    try:
        first = _check(session, chain, None, middle)
    finally:
        second = rest()  # waited for even where the first half failed: no process left behind
    return _report(chain, [first, second])


@dataclass(frozen=True)
class _Part:
    """The check of the events numbered [start, stop) of a chain (None: from its first, to its last)."""

    count: int  # events checked (up to and including the first that does not match)
    last_hash: str | None  # the hash the next event must follow; None: no event checked yet
    expected: int  # the number the next event must have
    problem: str | None = None
    event_id: int | None = None
    # a part that began mid-chain where the event before it is missing: its first event, which follows the
    # part before's last (the report names the first missing one, which only the part before knows)
    after_a_gap: str | None = None
    head: tuple[int, str] | None = None  # the chain head, read after the last part's events


def _check(session: Session, chain: str, start: int | None, stop: int | None) -> _Part:
    """Every event numbered [start, stop) checked against its content and the one before it. A part that
    begins mid-chain reads the event before it too (`start - 1`), for the hash its first event must follow;
    where that event is missing, the part stops at its first event and says so (after_a_gap). The last part
    (no `stop`) reads the chain head after its events, as one pass does."""
    table = Event.__table__  # type: ignore[attr-defined]
    c = table.c
    # the details as stored: the text the database wrote (canonical_json), hashed without parsing it
    stmt = (
        sa.select(c.id, c.seq, c.prev_hash, c.incident_id, c.playbook, raw(c.at), c.kind, c.actor, c.role)
        .add_columns(c.summary, sa.cast(c.details, sa.Text), c.hash)
        .where(c.chain == chain)
        .order_by(c.seq, c.id)
    )
    prev: str | None = GENESIS
    expected, count = 1, 0
    if start is not None:
        stmt = stmt.where(c.seq >= start - 1)
        prev, expected = None, start - 1  # the event before the part: the hash to follow
    if stop is not None:
        stmt = stmt.where(c.seq < stop)
    for event_id, seq, prev_hash, incident_id, playbook, at, kind, actor, role, summary, details, digest in rows(
        session, stmt
    ):
        if prev is None:
            if seq == expected:  # the event before this part: checked by the part before
                prev, expected = digest, seq + 1
                continue
            return _Part(1, None, expected, event_id=event_id, after_a_gap=_where(event_id, seq, kind, at))
        count += 1
        if seq != expected:
            what = "is missing (deleted)" if seq > expected else "appears twice"
            problem = f"event no. {expected} of the chain {what}; next is {_where(event_id, seq, kind, at)}"
            return _Part(count, prev, expected, problem, event_id)
        if prev_hash != prev:
            where = _where(event_id, seq, kind, at)
            return _Part(count, prev, expected, f"{where} does not follow the event before it (reordered)", event_id)
        fields = {
            "chain": chain,
            "seq": seq,
            "prev_hash": prev_hash,
            "incident_id": incident_id,
            "playbook": playbook,
            "kind": kind,
            "actor": actor,
            "role": role,
            "summary": summary,
        }
        try:
            at_iso = _iso(at)
            # text as canonical_json writes it is hashed as it is (a match proves it is what was hashed when it
            # was written); other text (older rows, another writer), or a mismatch, is parsed and re-encoded
            recomputed = (
                content_hash(**fields, at_iso=at_iso, details_json=details) if _canonical_looking(details) else None
            )
            if recomputed != digest:
                recomputed = content_hash(**fields, at_iso=at_iso, details=json.loads(details))
        except ValueError:  # a time or JSON no writer of ours stores
            recomputed = None
        if recomputed != digest:
            where = _where(event_id, seq, kind, at)
            return _Part(count, prev, expected, f"{where} was changed after it was written", event_id)
        prev, expected = digest, expected + 1
    head = None
    if stop is None:
        found = session.exec(select(ChainHead.seq, ChainHead.hash).where(ChainHead.chain == chain)).first()
        head = (found[0], found[1]) if found is not None else None
    return _Part(count, prev, expected, head=head)


def _canonical_looking(text: str) -> bool:
    """Whether stored JSON looks as canonical_json writes it: no space after its first key (json.dumps's
    default writes `"key": value`). Only which way is tried first; the hash decides."""
    at = text.find('":')
    return at < 0 or text[at + 2 : at + 3] != " "


def _report(chain: str, parts: list[_Part]) -> ChainReport:
    """The parts' checks, in chain order, as one pass would report them: the first problem, counted from the
    chain's start; else the head must be the last event checked."""
    count, prev, expected = 0, GENESIS, 1
    for part in parts:
        count += part.count
        if part.after_a_gap is not None:  # the events from `expected` up to this part's first are missing
            problem = f"event no. {expected} of the chain is missing (deleted); next is {part.after_a_gap}"
            return ChainReport(chain, count, prev, problem, part.event_id)
        if part.last_hash is not None:  # else the part read no event
            prev, expected = part.last_hash, part.expected
        if part.problem is not None:
            return ChainReport(chain, count, prev, part.problem, part.event_id)
    head = parts[-1].head
    if head is not None and head != (expected - 1, prev):
        if head[0] < expected - 1:
            problem = (
                f"the chain head (no. {head[0]}) is behind its newest event (no. {expected - 1}): events were "
                "written during the check, or the head was changed; check again"
            )
        elif head[0] == expected - 1:
            problem = f"the chain head's hash is not its newest event's (no. {head[0]}): the head was changed"
        else:
            problem = f"the newest {head[0] - (expected - 1)} event(s) of the chain are missing (deleted)"
        return ChainReport(chain, count, prev, problem)
    return ChainReport(chain, count, prev)


def _iso(at: str | datetime) -> str:
    """A stored time as the hash has it: ISO 8601 UTC with microseconds. SQLite's own text (naive UTC,
    `2026-03-01 09:00:00.864000`) is rewritten without parsing."""
    if isinstance(at, str):
        if sqlite_time(at):
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
        with own_session(engine, parent) as session:
            return verify_chain(session, chain)

    return in_fork(work)


def chains(session: Session, incident_id: int | None = None) -> list[str]:
    if incident_id is not None:
        return [incident_chain(incident_id)]
    found = set(session.exec(select(ChainHead.chain))) | set(session.exec(select(Event.chain).distinct()))
    return sorted(found, key=lambda c: (c.split(":")[0], int(c.split(":")[1]) if c.startswith("incident:") else 0, c))
