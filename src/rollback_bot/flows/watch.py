"""Use case: poll signals, record them, evaluate triggers, open an incident or attach to the open one."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from rollback_bot.flows import alerts
from rollback_bot.flows.deps import Deps
from rollback_bot.flows.ladder import step_entered
from rollback_bot.flows.readings import builtin_reading, fresh, history, latest, with_builtins
from rollback_bot.metrics.build import build_source
from rollback_bot.notify import publish_all
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.playbook.models import Playbook
from rollback_bot.rules.evaluate import Decision, TriggerState
from rollback_bot.rules.health import SignalHealth, track
from rollback_bot.rules.polling import PollGroup
from rollback_bot.rules.readings import Reading
from rollback_bot.rules.step import step_triggers
from rollback_bot.store import alerts as store_alerts
from rollback_bot.store import audit, watching
from rollback_bot.store import readings as store_readings
from rollback_bot.store.incidents import open_incident
from rollback_bot.store.models import Event, Incident, TriggerStateRow
from rollback_bot.telemetry import EVALUATIONS, INCIDENTS, POLLS

log = logging.getLogger(__name__)
SEVERITY_RANK = {"minor": 1, "major": 2, "critical": 3}


def poll(deps: Deps, loaded: LoadedPlaybook, names: Sequence[str], group: PollGroup | None = None) -> list[Reading]:
    """Read the named signals once, store every reading (failed ones too), then evaluate. With `group`, the
    poll group's start and finish are recorded so the watchdog can tell when polling falls behind."""
    pb = loaded.playbook
    started = time.perf_counter()
    if group is not None:
        with deps.store.session() as s:
            watching.poll_started(
                s,
                playbook=pb.name,
                group=group.name,
                every_s=group.interval.total_seconds(),
                signals=len(names),
                at=deps.now(),
            )
            s.commit()
    external = [build_source(n, pb.signals[n], pb) for n in names if pb.signals[n].fetched]
    readings = deps.reader.read_all(external, deps.now)
    builtins = [n for n in names if pb.signals[n].builtin is not None]
    pushed = [n for n in names if pb.signals[n].alertmanager is not None]
    with deps.lock(pb.name), deps.store.session() as s:
        incident = open_incident(s, playbook=pb.name)
        readings += [builtin_reading(n, pb.signals[n], incident, deps.now()) for n in builtins]
        alert_events: list[Event] = []
        if pushed:  # what Alertmanager sent, whichever process took it (before this poll's readings are stored)
            from_alerts, alert_events = alerts.read(s, pb, pushed, incident, deps.now())
            readings += from_alerts
        store_readings.insert_readings(
            s,
            [
                {
                    "playbook": pb.name,
                    "signal": r.signal,
                    "at": r.at,
                    "value": r.value,
                    "status": r.status,
                    "detail": r.detail,
                }
                for r in readings
            ],
        )
        events = alert_events + _track_health(s, pb, [r for r in readings if r.signal not in builtins], incident)
        s.commit()
        deps.polled[pb.name].update((r.signal, r) for r in readings)
    for status, count in Counter(r.status for r in readings).items():
        POLLS.labels(playbook=pb.name, status=status).inc(count)
    publish_all(deps.notifier, incident, events)
    evaluate(deps, loaded)
    if group is not None:
        with deps.store.session() as s:
            watching.poll_finished(
                s, playbook=pb.name, group=group.name, at=deps.now(), duration_s=time.perf_counter() - started
            )
            s.commit()
    return readings


def poll_alerts(deps: Deps, playbooks: Sequence[LoadedPlaybook], seen: datetime | None) -> datetime | None:
    """When Alertmanager sent something after `seen` (what the last look returned), poll every alertmanager
    signal now rather than at its next slot: the leader acts within a look of a webhook that any process took.
    Returns when the newest delivery was taken."""
    with deps.store.session() as s:
        newest = store_alerts.last_received(s)
    if newest is None or (seen is not None and newest <= seen):
        return seen if newest is None else max(newest, seen or newest)
    for loaded in playbooks:
        names = list(alerts.specs(loaded.playbook))
        if names:
            poll(deps, loaded, names)
    return newest


NEVER = 2**31 - 1
_HEALTH_SUMMARY = {
    "lost": "signal lost: {signal} ({failures} failed reads; last: {detail})",
    "silent": "signal silent: {signal} answered without data {empties} times in a row (last: {detail})",
    "stale": "signal stale: {signal} answered with old samples {empties} times in a row (last: {detail})",
}


def _track_health(s: Session, pb: Playbook, readings: Sequence[Reading], incident: Incident | None) -> list[Event]:
    """Signal health for a whole poll: one query to load, one statement for the rows that changed."""
    rows = watching.signal_health(s, playbook=pb.name)
    detecting = {sig for trig in pb.triggers.values() for sig in trig.signals}
    changed, events = [], []
    for r in readings:
        row = rows.get(r.signal)
        before = SignalHealth(row.failures, row.lost, row.empties, row.silent) if row else SignalHealth()
        spec = pb.signals[r.signal]
        # silence blinds a trigger; a watch-only signal without data says so in its step's watch table
        # (and Alertmanager only speaks when something fires: no alert yet is normal, not silence)
        silent_after = spec.silent_after if r.signal in detecting and spec.alertmanager is None else NEVER
        health, change = track(before, r, spec.lost_after, silent_after)
        if health != before:
            changed.append({"playbook": pb.name, "signal": r.signal, **asdict(health)})
        if change is None:
            continue
        detail = r.detail or r.status
        if change == "restored":
            was = "lost" if before.lost else f"silent for {before.empties} reads"
            now_value = f"{r.value:g}" if r.value is not None else f"answering, no data ({r.detail})"
            summary = f"signal restored: {r.signal} = {now_value} (was {was})"
        else:
            summary = _HEALTH_SUMMARY[change].format(
                signal=r.signal, failures=health.failures, empties=health.empties, detail=detail
            )
        events.append(
            audit.record(
                s,
                playbook=pb.name,
                incident_id=incident.id if incident else None,
                kind=f"signal.{change}",
                at=r.at,
                summary=summary,
                details={
                    "signal": r.signal,
                    "failures": health.failures,
                    "reads_without_data": health.empties,
                    "last_error": r.detail,
                    "status": r.status,
                },
            )
        )
    watching.save_signal_health(s, changed)
    return events


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
        incident = open_incident(s, playbook=pb.name)
        current = with_builtins(pb, _current(deps, s, pb, now), incident, now)
        past = history(s, pb, now)
        states = watching.trigger_states(s, playbook=pb.name)
        rows = {}
        for name in pb.triggers:
            row = states.get(name)
            if row is None:
                row = TriggerStateRow(playbook=pb.name, trigger=name)
                s.add(row)
            rows[name] = row
        before = {name: TriggerState(**{f: getattr(row, f) for f in _STATE_FIELDS}) for name, row in rows.items()}
        decisions = []
        for decision, new in step_triggers(pb, before, current, past, now):
            row = rows[decision.trigger]
            for f in _STATE_FIELDS:
                setattr(row, f, getattr(new, f))  # unchanged rows are not written
            decisions.append(decision)
        events: list[Event] = []
        for d in decisions:
            if d.fired:
                fired_alerts = alerts.firing_evidence(s, pb, pb.triggers[d.trigger].signals, now)
                if incident is None:
                    incident = _open(s, loaded, d, now, fired_alerts)
                    incident.step_index = 0
                    s.add(incident)
                    step_entered(deps, s, incident, loaded, 0, -1, now)
                    events += audit.timeline(s, incident.id)  # type: ignore[arg-type]
                else:
                    events.append(_signal_event(s, pb.name, incident, d, now, "trigger.attached", fired_alerts))
                    if SEVERITY_RANK[d.severity] > SEVERITY_RANK.get(incident.severity, 0):
                        incident.severity = d.severity  # the incident is as severe as its worst trigger
                        s.add(incident)
            elif d.cleared:
                events.append(_signal_event(s, pb.name, incident, d, now, "signal.cleared"))
            if d.held:
                events.append(_signal_event(s, pb.name, incident, d, now, "kpi.hold"))
            if d.blind and d.status == "hold":
                events.append(_signal_event(s, pb.name, incident, d, now, "trigger.blind"))
            if d.sighted:
                events.append(_signal_event(s, pb.name, incident, d, now, "trigger.sighted"))
        s.commit()
        return decisions, incident, events


_STATE_FIELDS = tuple(f.name for f in fields(TriggerState))


def _current(deps: Deps, s: Session, pb: Playbook, now: datetime) -> dict[str, Reading]:
    """The latest value of every signal: what this process just read, the rest from the store."""
    polled = deps.polled[pb.name]
    missing = [n for n in pb.signals if n not in polled and pb.signals[n].builtin is None]
    stored = latest(s, pb, now, deps.poll_floor, signals=missing) if missing else {}
    return stored | fresh(pb, polled, now, deps.poll_floor)


def _evidence_text(d: Decision) -> str:
    parts = []
    for e in d.evidence:
        value = "no data" if e.value is None else f"{e.value:g}"
        parts.append(f"{e.signal}={value}" + (f" ({e.note})" if e.note else ""))
    score = f"score {d.score:.3f}; " if d.score is not None else ""
    note = f"; {d.note}" if d.note else ""
    return score + ", ".join(parts) + note


def _alert_text(fired_alerts: dict[str, list[dict[str, Any]]]) -> str:
    """The first firing alert of each alertmanager signal, for a summary: its name, labels, summary and link."""
    parts = []
    for name, shown in fired_alerts.items():
        first = shown[0]
        labels = {k: v for k, v in sorted(first["labels"].items()) if k != "alertname"}
        text = first["labels"].get("alertname", name) + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        summary = first["annotations"].get("summary") or first["annotations"].get("description")
        text += f": {summary}" if summary else ""
        text += f" ({first['generator_url']})" if first["generator_url"] else ""
        parts.append(text + (f" and {len(shown) - 1} more" if len(shown) > 1 else ""))
    return "; alert " + "; ".join(parts) if parts else ""


def _signal_event(
    s: Session,
    playbook: str,
    incident: Incident | None,
    d: Decision,
    now: datetime,
    kind: str,
    fired_alerts: dict[str, list[dict[str, Any]]] | None = None,
) -> Event:
    verb = {
        "trigger.attached": "also fired",
        "signal.cleared": "cleared",
        "kpi.hold": "KPI gate says HOLD",
        "trigger.blind": "cannot see: HOLD, do not advance the rollout until it can",
        "trigger.sighted": "can see again",
    }[kind]
    return audit.record(
        s,
        playbook=playbook,
        incident_id=incident.id if incident else None,
        kind=kind,
        at=now,
        summary=f"{d.trigger} {verb} ({d.severity}): {d.rule} [{_evidence_text(d)}]{_alert_text(fired_alerts or {})}",
        details=d.as_dict() | ({"alerts": fired_alerts} if fired_alerts else {}),
    )


def new_incident(
    s: Session, loaded: LoadedPlaybook, *, severity: str, trigger: str, summary: str, evidence: dict[str, Any],
    now: datetime,
) -> Incident:  # fmt: skip
    """An open incident under the playbook as it is now (its text kept), with its id."""
    pb = loaded.playbook
    incident = Incident(
        playbook=pb.name,
        playbook_version=loaded.version,
        playbook_path=loaded.source,
        playbook_text=loaded.text,
        service=pb.service,
        channel=pb.channel,
        severity=severity,
        trigger=trigger,
        summary=summary,
        evidence=evidence,
        opened_at=now,
    )
    s.add(incident)
    s.flush()
    assert incident.id is not None
    return incident


def _open(
    s: Session, loaded: LoadedPlaybook, d: Decision, now: datetime, fired_alerts: dict[str, list[dict[str, Any]]]
) -> Incident:
    pb = loaded.playbook
    summary = f"{d.trigger}: {d.rule}"
    evidence = d.as_dict() | ({"alerts": fired_alerts} if fired_alerts else {})
    incident = new_incident(
        s, loaded, severity=d.severity, trigger=d.trigger, summary=summary, evidence=evidence, now=now
    )
    assert incident.id is not None
    audit.record(
        s,
        playbook=pb.name,
        incident_id=incident.id,
        kind="signal.fired",
        at=now,
        summary=f"{d.trigger} fired ({d.severity}): {d.rule} [{_evidence_text(d)}]{_alert_text(fired_alerts)}",
        details=evidence,
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
