"""Use case: move an open incident along its ladder. Entering a step is announced exactly once."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, update

from rollback_bot.directory import Directory
from rollback_bot.flows.deps import Deps
from rollback_bot.flows.readings import latest, with_builtins
from rollback_bot.ladder.approvals import Approved, is_complete
from rollback_bot.ladder.reminders import ack_reminders, step_end_reminder
from rollback_bot.ladder.stages import StageRun, next_stage_at
from rollback_bot.ladder.steps import next_boundary, position
from rollback_bot.notify import publish_all
from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.render.comms import TemplateProblem, render_comms
from rollback_bot.render.context import comms_context
from rollback_bot.rules.watch import watch_rows
from rollback_bot.store import actions as store_actions
from rollback_bot.store import audit
from rollback_bot.store import incidents as store_incidents
from rollback_bot.store.models import Event, Incident

log = logging.getLogger(__name__)


def open_incidents(deps: Deps) -> list[Incident]:
    with deps.store.session() as s:
        return store_incidents.open_incidents(s)


def next_step_due(deps: Deps) -> datetime | None:
    """The earliest moment, after now, something of an open incident falls due: its next step, an action's
    next stage (`stage_every` after the last; now, when one is overdue), a stage to send again (its sender
    died), a reminder. The scheduler wakes exactly then, not at its next 30 s tick."""
    from rollback_bot.flows.actions import resend_at

    now = deps.now()
    moments = []
    overdue: list[datetime] = []  # a stage due already that nobody started (it finished in another process): at once
    with deps.store.session() as s:
        for incident in store_incidents.open_incidents(s):
            assert incident.id is not None
            pb = deps.snapshot(incident).playbook
            boundary = next_boundary(pb, incident.step_index)
            if boundary is not None:
                moments.append(incident.opened_at + boundary)
            runs = store_actions.runs_by_action(s, incident_id=incident.id)
            approvals = store_actions.approvals_by_action(s, incident_id=incident.id)
            for step in pb.ladder if incident.held_by is None else ():
                for action in step.actions:
                    given = [Approved(a.user_id, a.role) for a in approvals.get(action.id, [])]
                    if not is_complete(action.requires, given):  # lapsed: it waits for people, not for time
                        continue
                    trail = [StageRun(r.stage, r.status, r.finished_at) for r in runs.get(action.id, [])]
                    if (at := next_stage_at(action, trail)) is not None:
                        (moments if at > now else overdue).append(at)
                    for run in runs.get(action.id, []):  # a stage whose sender died: sent again
                        if (at := resend_at(deps, action, run)) is not None:
                            (moments if at > now else overdue).append(at)
            if incident.acknowledged_by is None:
                moments += [incident.opened_at + plan.due for plan in ack_reminders(pb)]
            if 0 <= incident.step_index < len(pb.ladder):
                moments.append(incident.opened_at + step_end_reminder(pb, incident.step_index).due)
    if overdue:
        return now
    return min((m for m in moments if m > now), default=None)


def tick(deps: Deps) -> None:
    """Advance every open incident (the scheduler calls this; so does a restart)."""
    for incident in open_incidents(deps):
        try:
            assert incident.id is not None
            advance(deps, incident.id)
        except Exception:
            log.exception("advancing incident %s failed; will try again next tick", incident.id)


def advance(deps: Deps, incident_id: int) -> None:
    from rollback_bot.flows.actions import run_due_actions
    from rollback_bot.flows.reminders import send_due_reminders

    events: list[Event] = []
    with deps.store.session() as s:
        incident = s.get(Incident, incident_id)
        if incident is None or incident.status != "open":
            return
        loaded = deps.snapshot(incident)
        pb = loaded.playbook
        with deps.lock(pb.name):
            now = deps.now()
            pos = position(pb, now - incident.opened_at)
            target = len(pb.ladder) if pos.index is None else pos.index
            previous = incident.step_index  # read before the UPDATE, which also refreshes this object
            if target > previous:
                claimed = s.exec(
                    update(Incident)
                    .where(col(Incident.id) == incident_id, col(Incident.step_index) < target)
                    .values(step_index=target)
                )
                if claimed.rowcount == 1:
                    s.refresh(incident)
                    if pos.index is None:
                        events.append(_ladder_done(s, incident, loaded, now))
                    else:
                        events.append(step_entered(deps, s, incident, loaded, pos.index, previous, now))
                s.commit()
    publish_all(deps.notifier, incident, events)
    send_due_reminders(deps, incident_id)
    run_due_actions(deps, incident_id)


def incident_vars(incident: Incident, directory: Directory) -> dict[str, Any]:
    ack = incident.acknowledged_by
    return {
        "id": incident.id,
        "severity": incident.severity,
        "trigger": incident.trigger,
        "summary": incident.summary,
        "status": incident.status,
        "opened_at": incident.opened_at.strftime("%Y-%m-%d %H:%M UTC"),
        "acknowledged_by": directory.display_name(ack) if ack else None,
    }


def step_entered(
    deps: Deps, s: Session, incident: Incident, loaded: LoadedPlaybook, index: int, previous: int, now: datetime
) -> Event:
    """Record entering step `index` with its watch table and rendered comms (the caller commits)."""
    pb = loaded.playbook
    step = pb.ladder[index]
    assert incident.id is not None
    elapsed = now - incident.opened_at
    rows = watch_rows(step.watch, with_builtins(pb, latest(s, pb, now, deps.poll_floor), incident, now))
    ctx = comms_context(
        pb, incident=incident_vars(incident, deps.directory), step_index=index, elapsed=elapsed, watch=rows, now=now
    )
    comms: dict[str, str] = {}
    for name in step.comms:
        try:
            comms[name] = render_comms(loaded.templates_dir, name, ctx)
        except TemplateProblem as exc:  # checked at load; a template edited since must not stop the ladder
            comms[name] = f"(could not render: {exc})"
    skipped = [pb.ladder[i].name for i in range(previous + 1, index)]
    late = elapsed - step.start
    summary = f"step {index + 1}/{len(pb.ladder)} entered: {step.name} ({step.window_text()})"
    if skipped:
        summary += f"; skipped while the bot was down: {', '.join(skipped)}"
    return audit.record(
        s,
        playbook=pb.name,
        incident_id=incident.id,
        kind="step.entered",
        at=now,
        summary=summary,
        details={
            "step": index,
            "name": step.name,
            "window": step.window_text(),
            "target_at": (incident.opened_at + step.start).isoformat(),
            "late_by": format_duration(late),
            "late_by_seconds": late.total_seconds(),
            "skipped": skipped,
            "watch": [
                {
                    "signal": r.signal,
                    "rule": r.rule,
                    "value": r.value,
                    "status": r.status,
                    "label": pb.signal_labels.get(r.signal),
                }
                for r in rows
            ],
            "actions": [{"id": a.id, "label": a.label, "requires": a.requires} for a in step.actions],
            "comms": comms,
        },
    )


def _ladder_done(s: Session, incident: Incident, loaded: LoadedPlaybook, now: datetime) -> Event:
    pb = loaded.playbook
    return audit.record(
        s,
        playbook=pb.name,
        incident_id=incident.id,
        kind="ladder.completed",
        at=now,
        summary=f"the {format_duration(pb.duration)} ladder is complete; resolve the incident when satisfied",
        details={"steps": len(pb.ladder)},
    )
