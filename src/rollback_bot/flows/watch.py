"""Use case: poll signals, record them, evaluate triggers, open an incident or attach to the open one."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from rollback_bot.flows.deps import Deps
from rollback_bot.flows.ladder import step_entered
from rollback_bot.flows.readings import build_source, builtin_reading, history, latest, with_builtins
from rollback_bot.metrics.sources import read_many
from rollback_bot.notify import publish_all
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.rules.evaluate import Decision, TriggerState, step_trigger
from rollback_bot.rules.health import SignalHealth, track
from rollback_bot.rules.readings import Reading
from rollback_bot.store import audit
from rollback_bot.store.models import Event, Incident, ReadingRow, SignalHealthRow, TriggerStateRow
from rollback_bot.telemetry import EVALUATIONS, INCIDENTS, POLLS

log = logging.getLogger(__name__)
SEVERITY_RANK = {"minor": 1, "major": 2, "critical": 3}


def open_incident_of(session: Session, playbook: str) -> Incident | None:
    return session.exec(select(Incident).where(Incident.playbook == playbook, Incident.status == "open")).first()


def poll(deps: Deps, loaded: LoadedPlaybook, names: Sequence[str]) -> list[Reading]:
    """Read the named signals once, store every reading (failed ones too), then evaluate."""
    pb = loaded.playbook
    external = [build_source(n, pb.signals[n], pb) for n in names if pb.signals[n].builtin is None]
    readings = read_many(external, deps.http, deps.now)
    builtins = [n for n in names if pb.signals[n].builtin is not None]
    events: list[Event] = []
    with deps.lock(pb.name), deps.store.session() as s:
        incident = open_incident_of(s, pb.name)
        readings += [builtin_reading(n, pb.signals[n], incident, deps.now()) for n in builtins]
        for r in readings:
            s.add(
                ReadingRow(
                    playbook=pb.name,
                    signal=r.signal,
                    at=r.at,
                    value=r.value,
                    status=r.status,
                    detail=r.detail,
                )
            )
            events += _track_health(s, pb.name, r, pb.signals[r.signal].lost_after, incident)
        s.commit()
    for r in readings:
        POLLS.labels(playbook=pb.name, status=r.status).inc()
    publish_all(deps.notifier, incident, events)
    evaluate(deps, loaded)
    return readings


def _track_health(s: Session, playbook: str, r: Reading, lost_after: int, incident: Incident | None) -> list[Event]:
    row = s.get(SignalHealthRow, (playbook, r.signal)) or SignalHealthRow(playbook=playbook, signal=r.signal)
    health, change = track(SignalHealth(row.failures, row.lost), r, lost_after)
    row.failures, row.lost = health.failures, health.lost
    s.add(row)
    if change is None:
        return []
    if change == "lost":
        summary = f"signal lost: {r.signal} ({health.failures} failed reads; last: {r.detail or r.status})"
    else:
        now_value = f"{r.value:g}" if r.value is not None else f"answering, no data ({r.detail})"
        summary = f"signal restored: {r.signal} = {now_value}"
    ev = audit.record(
        s,
        playbook=playbook,
        incident_id=incident.id if incident else None,
        kind=f"signal.{change}",
        at=r.at,
        summary=summary,
        details={"signal": r.signal, "failures": health.failures, "last_error": r.detail, "status": r.status},
    )
    return [ev]


def evaluate(deps: Deps, loaded: LoadedPlaybook) -> list[Decision]:
    """Advance every trigger one evaluation; a newly firing trigger opens or joins the incident."""
    pb = loaded.playbook
    for attempt in range(2):
        try:
            decisions, incident, events = _evaluate_once(deps, loaded)
            break
        except IntegrityError:  # another replica opened the incident first: join it instead
            if attempt:
                raise
            log.info("incident for %s was opened concurrently; re-evaluating", pb.name)
    EVALUATIONS.labels(playbook=pb.name).inc()
    if any(e.kind == "incident.opened" for e in events) and incident is not None:
        INCIDENTS.labels(playbook=pb.name, severity=incident.severity).inc()
    publish_all(deps.notifier, incident, events)
    return decisions


def _evaluate_once(deps: Deps, loaded: LoadedPlaybook) -> tuple[list[Decision], Incident | None, list[Event]]:
    pb = loaded.playbook
    with deps.lock(pb.name), deps.store.session() as s:
        now = deps.now()
        incident = open_incident_of(s, pb.name)
        current = with_builtins(pb, latest(s, pb, now, deps.poll_floor), incident, now)
        past = history(s, pb, now)
        decisions = []
        for name, trig in pb.triggers.items():
            row = s.get(TriggerStateRow, (pb.name, name)) or TriggerStateRow(playbook=pb.name, trigger=name)
            decision, new = step_trigger(
                name, trig, TriggerState(row.pending_since, row.firing, row.gate), current, past, now
            )
            row.pending_since, row.firing, row.gate = new.pending_since, new.firing, new.gate
            s.add(row)
            decisions.append(decision)
        events: list[Event] = []
        for d in decisions:
            if d.fired:
                if incident is None:
                    incident = _open(s, loaded, d, now)
                    incident.step_index = 0
                    s.add(incident)
                    step_entered(deps, s, incident, loaded, 0, -1, now)
                    events += audit.timeline(s, incident.id)  # type: ignore[arg-type]
                else:
                    events.append(_signal_event(s, pb.name, incident, d, now, "trigger.attached"))
                    if SEVERITY_RANK[d.severity] > SEVERITY_RANK.get(incident.severity, 0):
                        incident.severity = d.severity  # the incident is as severe as its worst trigger
                        s.add(incident)
            elif d.cleared:
                events.append(_signal_event(s, pb.name, incident, d, now, "signal.cleared"))
            if d.held:
                events.append(_signal_event(s, pb.name, incident, d, now, "kpi.hold"))
        s.commit()
        return decisions, incident, events


def _evidence_text(d: Decision) -> str:
    parts = []
    for e in d.evidence:
        value = "no data" if e.value is None else f"{e.value:g}"
        parts.append(f"{e.signal}={value}" + (f" ({e.note})" if e.note else ""))
    score = f"score {d.score:.3f}; " if d.score is not None else ""
    return score + ", ".join(parts)


def _signal_event(s: Session, playbook: str, incident: Incident | None, d: Decision, now: datetime, kind: str) -> Event:
    verb = {"trigger.attached": "also fired", "signal.cleared": "cleared", "kpi.hold": "KPI gate says HOLD"}[kind]
    return audit.record(
        s,
        playbook=playbook,
        incident_id=incident.id if incident else None,
        kind=kind,
        at=now,
        summary=f"{d.trigger} {verb} ({d.severity}): {d.rule} [{_evidence_text(d)}]",
        details=d.as_dict(),
    )


def _open(s: Session, loaded: LoadedPlaybook, d: Decision, now: datetime) -> Incident:
    pb = loaded.playbook
    incident = Incident(
        playbook=pb.name,
        playbook_version=loaded.version,
        playbook_path=loaded.source,
        playbook_text=loaded.text,
        service=pb.service,
        channel=pb.channel,
        severity=d.severity,
        trigger=d.trigger,
        summary=f"{d.trigger}: {d.rule}",
        evidence=d.as_dict(),
        opened_at=now,
    )
    s.add(incident)
    s.flush()
    assert incident.id is not None
    audit.record(
        s,
        playbook=pb.name,
        incident_id=incident.id,
        kind="signal.fired",
        at=now,
        summary=f"{d.trigger} fired ({d.severity}): {d.rule} [{_evidence_text(d)}]",
        details=d.as_dict(),
    )
    audit.record(
        s,
        playbook=pb.name,
        incident_id=incident.id,
        kind="incident.opened",
        at=now,
        summary=f"incident #{incident.id} opened on {pb.service} under playbook {pb.name} v{loaded.version}",
        details={
            "trigger": d.trigger,
            "severity": d.severity,
            "playbook_version": loaded.version,
            "since": d.since.isoformat() if d.since else None,
        },
    )
    return incident
