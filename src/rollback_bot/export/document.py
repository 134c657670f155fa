"""The export document: the summary of one incident (gathered with small queries), plus its timeline,
streamed from the database in chain order. Every format renders from these two. JSON schema:
export/SCHEMA.md (versioned)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from rollback_bot.export import thresholds
from rollback_bot.playbook.loader import parse_playbook
from rollback_bot.store import readings as store_readings
from rollback_bot.store import stream
from rollback_bot.store.chain import incident_chain
from rollback_bot.store.models import ActionRun, Approval, ChainHead, Event, Incident
from rollback_bot.store.verify import ChainReport, verify_chain

SCHEMA = "rollback-bot/incident-export"
VERSION = 1
# a person refused in an incident: acknowledge, approve, hold or release, resolve, read or note
REFUSALS = ("approval.denied", "ack.denied", "hold.denied", "resolve.denied", "access.denied")
SUMMARY_KINDS = (
    "step.entered",
    "signal.fired",
    "trigger.attached",
    "action.succeeded",
    "action.failed",
    *REFUSALS,
    "approval.lapsed",
    "signal.cleared",
)


class ExportError(Exception):
    pass


def iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at else None


def _utc(text: str) -> datetime:
    """A stored time read as text (SQLite: naive UTC; PostgreSQL: with its offset) -> aware UTC."""
    at = datetime.fromisoformat(text)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def stored_iso(value: str | datetime) -> str:
    """iso() of a time read raw (SQLite: its own text, naive UTC; PostgreSQL: a datetime), without parsing
    SQLite's text."""
    if isinstance(value, str):
        if stream.sqlite_time(value):
            if value.endswith(".000000"):  # isoformat() leaves out zero microseconds
                return f"{value[:10]}T{value[11:19]}+00:00"
            return f"{value[:10]}T{value[11:]}+00:00"
        value = _utc(value)
    return value.astimezone(UTC).isoformat()


_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner json.loads uses


def stored_json(stored: str | bytes | Any) -> Any:
    """A JSON column read raw (SQLite: its text; PostgreSQL: parsed already). Text is parsed by the C scanner
    that json.loads calls, without its wrappers (tens of thousands of rows); anything else it cannot take
    whole goes through json.loads, which says what is wrong."""
    if type(stored) is str:
        try:
            value, end = _SCAN(stored, 0)
        except StopIteration:
            end = -1
        if end == len(stored):
            return value
    return json.loads(stored) if isinstance(stored, str | bytes) else stored


def utc_iso(text: str) -> str:
    """ISO 8601 UTC from the stored text; SQLite's own format is rewritten without parsing."""
    if stream.sqlite_time(text):  # 2026-03-01 09:00:00.864000 (naive UTC)
        return f"{text[:10]}T{text[11:]}+00:00"
    return _utc(text).isoformat()


def timeline(
    session: Session, incident_id: int, with_details: bool, start: int | None = None, stop: int | None = None
) -> Iterator[Any]:
    """Every event in chain order (numbered [start, stop) where given), read in batches, as the driver gives
    them: (seq, at, kind, actor, role, summary, hash, details), the time as the database's text (utc_iso turns
    it into ISO UTC) and the details as the stored JSON text (copied, never parsed, and only read when the
    format shows it; else None): no per-row type processing, and no object per row but the driver's."""
    table = Event.__table__  # type: ignore[attr-defined]
    details = sa.cast(table.c.details, sa.Text) if with_details else sa.literal_column("NULL")
    stmt = (
        sa.select(
            table.c.seq,
            sa.cast(table.c.at, sa.Text),
            table.c.kind,
            table.c.actor,
            table.c.role,
            table.c.summary,
            table.c.hash,
            details,
        )
        .where(table.c.chain == incident_chain(incident_id))
        .order_by(table.c.seq)  # read in the order of the chain's (chain, seq) index: nothing to sort
    )
    if start is not None:
        stmt = stmt.where(table.c.seq >= start)
    if stop is not None:
        stmt = stmt.where(table.c.seq < stop)
    return stream.rows(session, stmt)


def iter_timeline(
    session: Session, incident_id: int, names: dict[str, str], with_details: bool
) -> Iterator[dict[str, Any]]:
    """The timeline as dicts (a post-mortem template's `events`): `at` in ISO UTC, `actor_name`, and
    `details_json` (the stored text)."""
    yield from _event_dicts(timeline(session, incident_id, with_details), names)


def _event_dicts(rows: Iterable[Any], names: dict[str, str]) -> Iterator[dict[str, Any]]:
    for seq, at, kind, actor, role, summary, digest, raw in rows:
        yield {
            "seq": seq,
            "at": utc_iso(at),
            "kind": kind,
            "actor": actor,
            "actor_name": names.get(actor) if actor else None,
            "role": role,
            "summary": summary,
            "hash": digest,
            "details_json": raw,
        }


def opening(session: Session, incident_id: int, tz: str) -> tuple[Incident, ZoneInfo]:
    """The incident and the time zone asked for, or an ExportError that says what to do."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise ExportError(f"no incident #{incident_id}")
    try:
        zone = ZoneInfo(tz)
    except Exception:
        raise ExportError(f"unknown time zone {tz!r}; use an IANA name such as UTC or Europe/Paris") from None
    return incident, zone


def build(
    session: Session, incident_id: int, tz: str = "UTC", verify: bool = False, known: dict[str, str] | None = None
) -> dict[str, Any]:
    """`known`: names(session, incident_id), where the caller has them already."""
    incident, zone = opening(session, incident_id, tz)
    pb = parse_playbook(incident.playbook_text, incident.playbook_path).playbook
    names = names_of(session, incident_id) if known is None else known
    steps_entered: dict[int, dict[str, Any]] = {}
    fired, comms, results = [], [], []
    table = Event.__table__  # type: ignore[attr-defined]
    summary_rows = stream.rows(  # raw rows: an incident may have tens of thousands of these
        session,
        sa.select(table.c.kind, stream.raw(table.c.at), stream.raw(table.c.details), table.c.actor)
        .where(table.c.chain == incident_chain(incident_id), table.c.kind.in_(SUMMARY_KINDS))
        .order_by(table.c.seq),
    )
    denials = []
    lapsed: list[dict[str, Any]] = []  # approvals withdrawn before their action started, with why
    firing: set[str] = set()
    recovered_at: str | None = None  # when the last trigger still firing in the incident cleared
    for kind, stored_at, stored, actor in summary_rows:
        at = stored_iso(stored_at)
        d = stored_json(stored)
        ev = _Row(kind, at)
        if kind in ("signal.fired", "trigger.attached"):
            firing.add(str(d.get("trigger")))
            recovered_at = None
        elif kind == "signal.cleared":
            firing.discard(str(d.get("trigger")))
            recovered_at = at if not firing else recovered_at
            continue
        if kind == "approval.lapsed":
            lapsed.append(
                {
                    "action": d.get("action"),
                    "label": d.get("label") or d.get("action"),
                    "user": d.get("user"),
                    "name": d.get("name") or d.get("user"),
                    "role": d.get("role"),
                    "at": iso(_utc(d["approved_at"])) if d.get("approved_at") else None,
                    "evidence": d.get("given_on", {}),
                    "lapsed": {"at": at, "reason": d.get("reason")},
                }
            )
            continue
        if kind in REFUSALS:
            denials.append(
                {
                    "at": at,
                    "user": actor,
                    "name": d.get("name") or actor,
                    "action": d.get("label") or d.get("action") or "acknowledge",
                    "needed": d.get("missing") or d.get("needs") or [],
                    "evidence": d.get("values", {}),
                }
            )
            continue
        if ev.kind == "step.entered":
            steps_entered.setdefault(int(d["step"]), {"at": ev.at, "late_by_seconds": d.get("late_by_seconds")})
            comms += [{"step": d["name"], "name": n, "text": t, "at": ev.at} for n, t in d.get("comms", {}).items()]
        elif ev.kind in ("signal.fired", "trigger.attached"):
            fired.append(
                {
                    "trigger": d.get("trigger"),
                    "severity": d.get("severity"),
                    "rule": d.get("rule"),
                    "at": ev.at,
                    "since": d.get("since"),
                    "evidence": d.get("evidence", []),
                }
            )
        else:
            results.append(
                {
                    "action": d.get("action"),
                    "stage": d.get("stage"),
                    "outcome": ev.kind.removeprefix("action."),
                    "http_status": d.get("http_status"),
                    "attempts": d.get("attempts"),
                    "at": ev.at,
                }
            )
    fault_at = fault_onset(session, incident)
    mitigated = next((r for r in results if r["outcome"] == "succeeded"), None)  # the first action that took effect
    approvals = [
        {
            "action": a.action_id,
            "label": _label(pb, a.action_id),
            "user": a.user_id,
            "name": names.get(a.user_id, a.user_id),
            "role": a.role,
            "at": iso(a.at),
            "evidence": a.evidence,
            "lapsed": None,
        }
        for a in session.exec(
            select(Approval).where(Approval.incident_id == incident_id).order_by(col(Approval.at), col(Approval.id))
        )
    ]
    approvals = sorted(approvals + lapsed, key=lambda a: str(a["at"]))
    runs = sorted(session.exec(select(ActionRun).where(ActionRun.incident_id == incident_id)), key=lambda r: r.stage)
    ladder = []
    for i, step in enumerate(pb.ladder):
        entered = steps_entered.get(i)
        ladder.append(
            {
                "index": i + 1,
                "name": step.name,
                "window": step.window_text(),
                "target_at": iso(incident.opened_at + step.start),
                "entered_at": entered["at"] if entered else None,
                "late_by_seconds": entered["late_by_seconds"] if entered else None,
                "watch": [str(c) for c in step.watch],
                "actions": [
                    {
                        "id": a.id,
                        "label": a.label,
                        "requires": a.requires,
                        "approved_by": [
                            f"{x['name']} ({x['role']})" for x in approvals if x["action"] == a.id and not x["lapsed"]
                        ],
                        "stages": [
                            {"stage": r.stage, "status": r.status, "finished_at": iso(r.finished_at)}
                            for r in runs
                            if r.action_id == a.id
                        ],
                    }
                    for a in step.actions
                ],
            }
        )
    first_breach = _first_breach(incident)
    onset = fault_at or _utc(str(first_breach))
    until = incident.resolved_at or datetime.now(UTC)
    points = store_readings.points_between(
        session, playbook=incident.playbook, start=onset - timedelta(minutes=30), end=until + timedelta(minutes=10)
    )
    fired_names = {str(f["trigger"]) for f in fired}
    learned = thresholds.section(pb, points, fired_names, fault_at, incident_id)  # the fault's onset, where known
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "generated_at": iso(datetime.now(UTC)),
        "timezone": zone.key,
        "incident": {
            "id": incident.id,
            "playbook": incident.playbook,
            "playbook_version": incident.playbook_version,
            "service": incident.service,
            "channel": incident.channel,
            "severity": incident.severity,
            "status": incident.status,
            "open": incident.status == "open",
            "trigger": incident.trigger,
            "trigger_description": pb.triggers[incident.trigger].description if incident.trigger in pb.triggers else "",
            "description": pb.description,
            "summary": incident.summary,
            "opened_at": iso(incident.opened_at),
            "acknowledged_at": iso(incident.acknowledged_at),
            "acknowledged_by": incident.acknowledged_by,
            "acknowledged_by_name": names.get(incident.acknowledged_by or "", incident.acknowledged_by),
            "resolved_at": iso(incident.resolved_at),
            "resolved_by": incident.resolved_by,
            "resolved_by_name": names.get(incident.resolved_by or "", incident.resolved_by),
        },
        "impact_window": {"start": iso(fault_at) or first_breach, "end": iso(incident.resolved_at)},
        "detection": {
            "fault_onset": iso(fault_at),
            "first_breach": first_breach,
            "incident_opened": iso(incident.opened_at),
            "mitigated": mitigated["at"] if mitigated else None,
            "mitigated_by": (
                f"{_label(pb, str(mitigated['action'])) if mitigated['action'] else 'an action'} "
                f"{_stage(mitigated['stage'])}%"
                if mitigated
                else None
            ),
            "recovered": recovered_at,
        },
        "ladder": ladder,
        "approvals": approvals,
        "denials": denials,
        "signals_fired": fired,
        "signal_labels": pb.signal_labels,
        "thresholds": learned,
        "communications": comms,
        "action_results": results,
        "event_count": session.exec(select(func.count()).where(Event.incident_id == incident_id)).one(),
        "chain": _chain(session, incident_id, verify),
        "names": names,
    }


def fault_onset(session: Session, incident: Incident) -> datetime | None:
    """A drill's fault, injected before any incident exists: it is on the playbook's chain."""
    return session.exec(
        select(Event.at)
        .where(Event.playbook == incident.playbook, Event.kind == "drill.fault", col(Event.at) <= incident.opened_at)
        .order_by(col(Event.at).desc())
        .limit(1)
    ).first()


def charts_basis(session: Session, incident: Incident) -> dict[str, Any]:
    """The document's fields the charts are drawn from (impact window, resolution, triggers fired), without
    building it: the CLI starts drawing them before the rest is gathered."""
    table = Event.__table__  # type: ignore[attr-defined]
    stored = session.connection().execute(
        sa.select(stream.raw(table.c.details))
        .where(table.c.incident_id == incident.id, table.c.kind.in_(("signal.fired", "trigger.attached")))
        .order_by(table.c.seq)
    )
    fired = [{"trigger": stored_json(d).get("trigger")} for (d,) in stored]
    first_breach = _first_breach(incident)
    return {
        "impact_window": {"start": iso(fault_onset(session, incident)) or first_breach},
        "incident": {"resolved_at": iso(incident.resolved_at)},
        "signals_fired": fired,
    }


def _first_breach(incident: Incident) -> str | None:
    """When the trigger that opened the incident first breached (its evidence's `since`), else the opening."""
    return incident.evidence.get("since") or iso(incident.opened_at)


class _Row:
    __slots__ = ("at", "kind")

    def __init__(self, kind: str, at: str) -> None:
        self.kind, self.at = kind, at


def names_of(session: Session, incident_id: int) -> dict[str, str]:
    """Each person's name as recorded when they first acted in this incident."""
    table = Event.__table__  # type: ignore[attr-defined]
    chain = incident_chain(incident_id)
    firsts = (  # each person's first event, found along the chain's (chain, seq) index
        sa.select(sa.func.min(table.c.seq))
        .where(table.c.chain == chain, table.c.actor.is_not(None))
        .group_by(table.c.actor)
    )
    stmt = sa.select(table.c.actor, table.c.details).where(table.c.chain == chain, table.c.seq.in_(firsts))
    return {actor: str((details or {}).get("name") or actor) for actor, details in session.connection().execute(stmt)}


def _chain(session: Session, incident_id: int, verify: bool) -> dict[str, Any]:
    """The final hash; the head must agree with the newest event. Full recomputation only when asked."""
    return chain_section(session, incident_id, verify_chain(session, incident_chain(incident_id)) if verify else None)


def chain_section(session: Session, incident_id: int, report: ChainReport | None) -> dict[str, Any]:
    """The document's `chain`, with the report of a full recomputation when there is one."""
    chain = incident_chain(incident_id)
    head = session.get(ChainHead, chain)
    last = session.exec(select(Event.hash).where(Event.chain == chain).order_by(col(Event.seq).desc()).limit(1)).first()
    out: dict[str, Any] = {"final_hash": head.hash if head else last, "verified": report is not None}
    if report is not None:
        out.update(intact=report.ok, problem=report.problem)
    else:
        consistent = head is not None and head.hash == last
        out.update(
            intact=None if consistent else False,
            problem=None if consistent else "the newest event does not match the chain head",
        )
    return out


def _stage(stage: Any) -> str:
    return f"{stage:g}" if isinstance(stage, int | float) else str(stage or 100)


def _label(pb: Any, action_id: str) -> str:
    try:
        return str(pb.action(action_id)[1].label)
    except KeyError:
        return action_id
