"""The one writer of timeline events. Called inside the caller's transaction, so an event and the
state change it describes commit together or not at all."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select, update

from rollback_bot.store import inbound, leader
from rollback_bot.store.chain import GENESIS, chain_of, hash_of, json_safe
from rollback_bot.store.database import insert_for
from rollback_bot.store.models import ChainHead, Event

log = logging.getLogger("rollback_bot.timeline")

KINDS = frozenset(
    {
        "signal.fired",
        "signal.cleared",
        "signal.lost",
        "signal.restored",
        "signal.silent",
        "signal.stale",
        "alert.firing",
        "alert.resolved",
        "polling.behind",
        "polling.restored",
        "trigger.blind",
        "trigger.sighted",
        "kpi.hold",
        "incident.opened",
        "trigger.attached",
        "step.entered",
        "ladder.completed",
        "ack",
        "ack.denied",
        "approval",
        "approval.denied",
        "approval.duplicate",
        "approval.lapsed",
        "hold.denied",
        "resolve.denied",
        "access.denied",
        "role.unknown",
        "action.started",
        "action.succeeded",
        "action.failed",
        "note",
        "reminder",
        "incident.held",
        "incident.released",
        "incident.resolved",
        "drill.fault",
        "drill.recovered",
        "drill.investigating",
        "drill.fixed",
        "rollout.started",
        "rollout.verdict",
        "rollout.advanced",
        "rollout.held",
        "rollout.released",
        "rollout.rolled_back",
        "rollout.completed",
        "rollout.traffic",
        "rollout.denied",
        "panic.passed",
        "panic.failed",
        "panic.missed",
        "panic.acknowledged",
        "panic.reminder",
        "panic.denied",
    }
)

# refusals of a person (what `/rollback timeline` counts and the post-mortem lists)
DENIED = frozenset(
    {
        "ack.denied",
        "approval.denied",
        "hold.denied",
        "resolve.denied",
        "access.denied",
        "rollout.denied",
        "panic.denied",
    }
)
# recorded, never posted to Slack: a refused or unknown person must not be able to make the bot spam a channel,
# nor an approver clicking Approve again (they are answered; their approval was posted once)
UNPOSTED = frozenset({"access.denied", "role.unknown", "approval.duplicate"})


def record(
    session: Session,
    *,
    playbook: str,
    kind: str,
    at: datetime,
    summary: str,
    incident_id: int | None = None,
    actor: str | None = None,
    role: str | None = None,
    details: dict[str, Any] | None = None,
) -> Event:
    """Append one event to its chain, inside the caller's transaction."""
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    inbound.take_current(session)  # a replayed Slack request raises here, so its transaction records nothing
    leader.check_current(session)  # a scheduler job of a process that lost the lease raises here (Fenced)
    chain = chain_of(incident_id, playbook)
    seq, prev = _advance_head(session, chain)
    clean = json_safe(details or {})
    ev = Event(
        incident_id=incident_id,
        playbook=playbook,
        at=at,
        kind=kind,
        actor=actor,
        role=role,
        summary=summary,
        details=clean,
        chain=chain,
        seq=seq,
        prev_hash=prev,
    )
    ev.hash = hash_of(ev)
    session.add(ev)
    session.flush()
    session.exec(update(ChainHead).where(col(ChainHead.chain) == chain).values(hash=ev.hash))
    session.info.setdefault(_RECORDED, []).append((ev.kind, ev.summary, ev.playbook, ev.incident_id, ev.id, ev.actor))
    return ev


# --- the lifecycle in the log: each event once its transaction commits (never one that was rolled back) ------
_RECORDED = "rollback_bot.recorded"
LOUD = frozenset({"signal.lost", "signal.silent", "signal.stale", "polling.behind", "trigger.blind", "action.failed"})


@sa_event.listens_for(OrmSession, "after_commit")
def _log_committed(session: OrmSession) -> None:
    for kind, summary, playbook, incident_id, event_id, actor in session.info.pop(_RECORDED, ()):
        where = f"incident #{incident_id}" if incident_id is not None else playbook
        if summary.startswith(f"{where} "):  # 'incident #3 opened on ...' says where already
            where = playbook
        log.log(
            logging.WARNING if kind in LOUD else logging.INFO,
            "%s: %s",
            where,
            summary,
            extra={"incident": incident_id, "playbook": playbook, "kind": kind, "event_id": event_id, "actor": actor},
        )


@sa_event.listens_for(OrmSession, "after_rollback")
def _forget_rolled_back(session: OrmSession) -> None:
    session.info.pop(_RECORDED, None)


def _advance_head(session: Session, chain: str) -> tuple[int, str]:
    """Take the chain's next seq and the hash to follow. The UPDATE locks the head row (PostgreSQL) or the
    database (SQLite) until commit, so concurrent appends to one chain queue up instead of forking it."""
    advance = (
        update(ChainHead)
        .where(col(ChainHead.chain) == chain)
        .values(seq=ChainHead.seq + 1)
        .returning(col(ChainHead.seq), col(ChainHead.hash))
    )
    row = session.exec(advance).first()
    if row is None:  # the chain's first event: create its head (once, whoever races), then advance it
        insert = insert_for(session)
        session.exec(
            insert(ChainHead).values(chain=chain, seq=0, hash=GENESIS).on_conflict_do_nothing(index_elements=["chain"])
        )
        row = session.exec(advance).one()
    return int(row[0]), str(row[1])


def timeline(session: Session, incident_id: int) -> list[Event]:
    stmt = select(Event).where(Event.incident_id == incident_id).order_by(col(Event.seq), col(Event.id))
    return list(session.exec(stmt))


def playbook_events(session: Session, *, playbook: str, after: int = 0) -> list[Event]:
    """The playbook's events (its own and its incidents') with ids above `after`, in the order recorded."""
    stmt = select(Event).where(Event.playbook == playbook, col(Event.id) > after).order_by(col(Event.id))
    return list(session.exec(stmt))


def last_event_id(session: Session) -> int:
    """The newest event's id (0 when there is none): what came before a drill in a kept database."""
    stmt = select(Event.id).order_by(col(Event.id).desc()).limit(1)
    return session.exec(stmt).first() or 0
