"""Use case: send the reminders an open incident is owed, each exactly once (restarts included)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from rollback_bot.directory import holders
from rollback_bot.flows.deps import Deps
from rollback_bot.ladder.approvals import Approved, missing_roles
from rollback_bot.ladder.reminders import ack_reminders, latest_due, step_end_reminder
from rollback_bot.ladder.steps import position
from rollback_bot.notify import publish_all
from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.models import Playbook
from rollback_bot.store import audit
from rollback_bot.store.actions import approvals_of, runs_of
from rollback_bot.store.models import Event, Incident, Reminder

Due = tuple[str, tuple[str, ...], str]  # key, roles to mention, text; None text: claim silently


def send_due_reminders(deps: Deps, incident_id: int) -> list[Event]:
    with deps.store.session() as s:
        incident = s.get(Incident, incident_id)
        if incident is None or incident.status != "open":
            return []
        pb = deps.snapshot(incident).playbook
        now = deps.now()
        sent = set(s.exec(select(Reminder.key).where(Reminder.incident_id == incident_id)))
        due = [d for d in _due(s, pb, incident, now) if d[0] not in sent]
    events = [ev for key, roles, text in due if (ev := _send(deps, incident, pb, key, roles, text, now))]
    publish_all(deps.notifier, incident, events)
    return events


def _due(s: Session, pb: Playbook, incident: Incident, now: datetime) -> list[Due]:
    out: list[Due] = []
    assert incident.id is not None
    elapsed = now - incident.opened_at
    if incident.acknowledged_by is None:
        plan, older = latest_due(ack_reminders(pb), elapsed)
        if plan is not None:
            out += [(old.key, (), "") for old in older]  # missed while down: superseded, never sent late
            text = f"incident #{incident.id} is still unacknowledged after {format_duration(elapsed)}"
            out.append((plan.key, plan.roles, text))
    pos = position(pb, elapsed)
    if pos.index is not None and pos.index == incident.step_index and pos.step is not None:
        plan = step_end_reminder(pb, pos.index)
        if elapsed >= plan.due:
            undone, roles = _unfinished(s, pb, incident.id, pos.index)
            if undone:
                left = format_duration(pos.step.end - elapsed)
                text = f"step {pos.index + 1} '{pos.step.name}' ends in {left}; not done: {'; '.join(undone)}"
                out.append((plan.key, (*roles, *plan.roles), text))
    return out


def _unfinished(s: Session, pb: Playbook, incident_id: int, index: int) -> tuple[list[str], tuple[str, ...]]:
    """The step's actions not done yet, and the roles whose approval they still wait for."""
    undone: list[str] = []
    roles: list[str] = []
    for action in pb.ladder[index].actions:
        approvals = [Approved(a.user_id, a.role) for a in approvals_of(s, incident_id=incident_id, action_id=action.id)]
        missing = missing_roles(action.requires, approvals)
        if missing:
            undone.append(f"{action.label} (needs {', '.join(missing)})")
            roles += missing
            continue
        done = {r.stage for r in runs_of(s, incident_id=incident_id, action_id=action.id) if r.status == "succeeded"}
        if not set(action.stage_list) <= done:
            undone.append(f"{action.label} (stages pending)")
    return undone, tuple(roles)


def _send(
    deps: Deps, incident: Incident, pb: Playbook, key: str, roles: tuple[str, ...], text: str, now: datetime
) -> Event | None:
    """Claim the reminder's unique key and record it in one transaction; None if it went out before."""
    roles = tuple(dict.fromkeys(roles))
    people = sorted({p for role in roles for p in holders(pb, role, deps.directory)})
    with deps.store.session() as s:
        assert incident.id is not None
        try:
            s.add(Reminder(incident_id=incident.id, key=key, at=now))
            ev = None
            if text:
                ev = audit.record(
                    s,
                    playbook=pb.name,
                    incident_id=incident.id,
                    kind="reminder",
                    at=now,
                    summary=f"reminder: {text} (for {', '.join(roles)})",
                    details={"key": key, "roles": list(roles), "mentions": people, "text": text},
                )
            s.commit()
        except IntegrityError:  # another worker sent it first
            return None
        return ev
