"""Check hash chains: recompute every event's hash and name the first event that does not match."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from rollback_bot.store.chain import GENESIS, hash_of
from rollback_bot.store.models import ChainHead, Event


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
    events = session.exec(select(Event).where(Event.chain == chain).order_by(col(Event.seq), col(Event.id)))
    prev, expected, count = GENESIS, 1, 0
    for ev in events:
        count += 1
        where = f"event #{ev.id} (no. {ev.seq} of the chain, {ev.kind} at {ev.at:%Y-%m-%d %H:%M:%S} UTC)"
        if ev.seq != expected:
            what = "is missing (deleted)" if ev.seq > expected else "appears twice"
            return ChainReport(chain, count, prev, f"event no. {expected} of the chain {what}; next is {where}", ev.id)
        if ev.prev_hash != prev:
            return ChainReport(chain, count, prev, f"{where} does not follow the event before it (reordered)", ev.id)
        recomputed = hash_of(ev)
        if recomputed != ev.hash:
            return ChainReport(chain, count, prev, f"{where} was changed after it was written", ev.id)
        prev, expected = ev.hash, expected + 1
    head = session.get(ChainHead, chain)
    if head is not None and (head.seq, head.hash) != (expected - 1, prev):
        missing = head.seq - (expected - 1)
        return ChainReport(chain, count, prev, f"the newest {missing} event(s) of the chain are missing (deleted)")
    return ChainReport(chain, count, prev)


def chains(session: Session, incident_id: int | None = None) -> list[str]:
    if incident_id is not None:
        return [f"incident:{incident_id}"]
    found = set(session.exec(select(ChainHead.chain))) | set(session.exec(select(Event.chain).distinct()))
    return sorted(found, key=lambda c: (c.split(":")[0], int(c.split(":")[1]) if c.startswith("incident:") else 0, c))
