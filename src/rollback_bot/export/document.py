"""The export document: everything a post-mortem needs about one incident, gathered once; every format
(JSON, CSV, Markdown, HTML) renders from it. JSON schema: docs in export/SCHEMA.md (versioned)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from rollback_bot.playbook.loader import parse_playbook
from rollback_bot.store.models import ActionRun, Approval, Event, Incident
from rollback_bot.store.verify import verify_chain

SCHEMA = "rollback-bot/incident-export"
VERSION = 1
EVENT_COLUMNS = ("id", "seq", "at", "kind", "actor", "role", "summary", "details", "hash")


class ExportError(Exception):
    pass


def iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at else None


def iter_events(session: Session, incident_id: int) -> Iterator[dict[str, Any]]:
    """The timeline in chain order, as light dicts (Core rows, not ORM objects: exports can be large)."""
    table = Event.__table__  # type: ignore[attr-defined]
    stmt = (
        sa.select(*[table.c[name] for name in EVENT_COLUMNS])
        .where(table.c.incident_id == incident_id)
        .order_by(table.c.seq, table.c.id)
        .execution_options(yield_per=5000)
    )
    for row in session.connection().execute(stmt):
        yield dict(zip(EVENT_COLUMNS, row, strict=True))


def build(session: Session, incident_id: int, tz: str = "UTC") -> dict[str, Any]:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise ExportError(f"no incident #{incident_id}")
    try:
        zone = ZoneInfo(tz)
    except Exception:
        raise ExportError(f"unknown time zone {tz!r}; use an IANA name such as UTC or Europe/Paris") from None
    pb = parse_playbook(incident.playbook_text, incident.playbook_path).playbook
    events = []
    names: dict[str, str] = {}
    steps_entered: dict[int, dict[str, Any]] = {}
    fired, comms, results, fault_at = [], [], [], None
    for ev in iter_events(session, incident_id):
        details = ev["details"] or {}
        if ev["actor"] and details.get("name"):
            names.setdefault(ev["actor"], str(details["name"]))
        ev["actor_name"] = details.get("name") if ev["actor"] else None
        kind = ev["kind"]
        if kind == "step.entered":
            steps_entered.setdefault(
                int(details["step"]), {"at": ev["at"], "late_by_seconds": details.get("late_by_seconds")}
            )
            comms += [
                {"step": details["name"], "name": n, "text": t, "at": iso(ev["at"])}
                for n, t in details.get("comms", {}).items()
            ]
        elif kind in ("signal.fired", "trigger.attached"):
            fired.append(
                {
                    "trigger": details.get("trigger"),
                    "severity": details.get("severity"),
                    "rule": details.get("rule"),
                    "at": iso(ev["at"]),
                    "since": details.get("since"),
                    "evidence": details.get("evidence", []),
                }
            )
        elif kind in ("action.succeeded", "action.failed"):
            results.append(
                {
                    "action": details.get("action"),
                    "stage": details.get("stage"),
                    "outcome": kind.removeprefix("action."),
                    "http_status": details.get("http_status"),
                    "attempts": details.get("attempts"),
                    "at": iso(ev["at"]),
                }
            )
        elif kind == "drill.fault":
            fault_at = ev["at"]
        events.append(ev)
    if fault_at is None:  # a drill's fault is injected before any incident exists: it is a playbook event
        fault_at = session.exec(
            select(Event.at)
            .where(
                Event.playbook == incident.playbook, Event.kind == "drill.fault", col(Event.at) <= incident.opened_at
            )
            .order_by(col(Event.at).desc())
            .limit(1)
        ).first()
    approvals = [
        {
            "action": a.action_id,
            "label": _label(pb, a.action_id),
            "user": a.user_id,
            "name": names.get(a.user_id, a.user_id),
            "role": a.role,
            "at": iso(a.at),
            "evidence": a.evidence,
        }
        for a in session.exec(
            select(Approval).where(Approval.incident_id == incident_id).order_by(col(Approval.at), col(Approval.id))
        )
    ]
    runs = list(session.exec(select(ActionRun).where(ActionRun.incident_id == incident_id)))
    ladder = []
    for i, step in enumerate(pb.ladder):
        entered = steps_entered.get(i)
        ladder.append(
            {
                "index": i + 1,
                "name": step.name,
                "window": step.window_text(),
                "target_at": iso(incident.opened_at + step.start),
                "entered_at": iso(entered["at"]) if entered else None,
                "late_by_seconds": entered["late_by_seconds"] if entered else None,
                "watch": [str(c) for c in step.watch],
                "actions": [
                    {
                        "id": a.id,
                        "label": a.label,
                        "requires": a.requires,
                        "approved_by": [f"{x['name']} ({x['role']})" for x in approvals if x["action"] == a.id],
                        "stages": [
                            {"stage": r.stage, "status": r.status, "finished_at": iso(r.finished_at)}
                            for r in sorted(runs, key=lambda r: r.stage)
                            if r.action_id == a.id
                        ],
                    }
                    for a in step.actions
                ],
            }
        )
    chain = verify_chain(session, f"incident:{incident_id}")
    first_breach = incident.evidence.get("since") or iso(incident.opened_at)
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
        },
        "ladder": ladder,
        "approvals": approvals,
        "signals_fired": fired,
        "communications": comms,
        "action_results": results,
        "events": [{**{k: v for k, v in e.items() if k != "at"}, "at": iso(e["at"])} for e in events],
        "chain": {"final_hash": chain.final_hash, "events": chain.events, "intact": chain.ok, "problem": chain.problem},
    }


def _label(pb: Any, action_id: str) -> str:
    try:
        return str(pb.action(action_id)[1].label)
    except KeyError:
        return action_id
