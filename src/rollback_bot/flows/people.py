"""Use cases driven by people: acknowledge, approve, add a note, resolve. Every attempt is recorded,
allowed or denied, with the role used and the metric values at that moment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, update

from rollback_bot.directory import roles_of
from rollback_bot.flows.actions import approvals_of, run_due_actions
from rollback_bot.flows.deps import Deps, Outcome
from rollback_bot.flows.readings import latest, with_builtins
from rollback_bot.ladder.approvals import Approved, assign_role
from rollback_bot.ladder.steps import position
from rollback_bot.notify import publish_all
from rollback_bot.playbook.models import Playbook
from rollback_bot.store import audit
from rollback_bot.store.models import Approval, Event, Incident, TriggerStateRow


def _snapshot_values(deps: Deps, s: Session, incident: Incident, pb: Playbook, now: datetime) -> dict[str, Any]:
    """The evidence an approver saw: every signal's latest value (or why there is none)."""
    out: dict[str, Any] = {}
    for name, r in with_builtins(pb, latest(s, pb, now, deps.poll_floor), incident, now).items():
        out[name] = {"value": r.value, "status": r.status, "at": r.at.isoformat(), "detail": r.detail}
    return out


def _name(deps: Deps, user: str) -> str:
    """The person's name as it was at the time (names change; the timeline keeps what it was)."""
    return deps.directory.display_name(user)


def _who(deps: Deps, user: str) -> str:
    name = deps.directory.display_name(user)
    return f"{name} ({user})" if name != user else user


def _gate(
    deps: Deps,
    s: Session,
    incident: Incident,
    pb: Playbook,
    user: str,
    required: list[str],
    verb: str,
    kind: str,
    base: dict[str, Any],
) -> tuple[set[str], Outcome | None]:
    """The roles `user` may act in here; without one, the refusal is recorded and the reply says who may."""
    roles = roles_of(pb, user, deps.directory) & set(required)
    if roles:
        return roles, None
    needed = " or ".join(required)
    ev = audit.record(
        s,
        kind=kind,
        summary=f"{_who(deps, user)} may not {verb}: needs {needed}",
        details={"action": verb, "needs": required, "name": _name(deps, user)},
        **base,
    )
    s.commit()
    publish_all(deps.notifier, incident, [ev])
    return roles, Outcome(False, f"Only {needed} may {verb} this incident.", incident.id)


def acknowledge(deps: Deps, incident_id: int, user: str) -> Outcome:
    with deps.store.session() as s:
        incident = s.get(Incident, incident_id)
        if incident is None:
            return Outcome(False, f"no incident #{incident_id}")
        pb = deps.snapshot(incident).playbook
        now = deps.now()
        base: dict[str, Any] = {"playbook": pb.name, "incident_id": incident_id, "at": now, "actor": user}
        if incident.status != "open":
            return Outcome(False, f"incident #{incident_id} is already {incident.status}", incident_id)
        roles, refused = _gate(deps, s, incident, pb, user, pb.acknowledge.requires, "acknowledge", "ack.denied", base)
        if refused:
            return refused
        role = sorted(roles)[0]
        claimed = s.exec(
            update(Incident)
            .where(col(Incident.id) == incident_id, col(Incident.acknowledged_by).is_(None))
            .values(acknowledged_by=user, acknowledged_at=now)
        )
        if claimed.rowcount != 1:
            s.rollback()
            s.refresh(incident)
            at = incident.acknowledged_at
            when = f" at {at:%H:%M:%S} UTC" if at else ""
            return Outcome(
                False,
                f"already acknowledged by {_who(deps, incident.acknowledged_by or '?')}{when}",
                incident_id,
            )
        minutes = (now - incident.opened_at).total_seconds() / 60
        ev = audit.record(
            s,
            kind="ack",
            role=role,
            summary=f"acknowledged by {_who(deps, user)} as {role} after {minutes:.1f} min",
            details={
                "minutes_to_ack": minutes,
                "name": _name(deps, user),
                "values": _snapshot_values(deps, s, incident, pb, now),
            },
            **base,
        )
        s.commit()
        s.refresh(incident)
    publish_all(deps.notifier, incident, [ev])
    return Outcome(True, f"acknowledged incident #{incident_id}", incident_id)


def approve(deps: Deps, incident_id: int, action_id: str, user: str) -> Outcome:
    """Record one approval; when the action's approvals are complete, run it (exactly once)."""
    for attempt in range(3):
        try:
            outcome, events, incident = _approve_once(deps, incident_id, action_id, user)
            break
        except IntegrityError:  # someone filled the same slot at the same moment; decide again
            if attempt == 2:
                raise
    publish_all(deps.notifier, incident, events)
    if outcome.ok:
        run_due_actions(deps, incident_id)
    return outcome


def _approve_once(
    deps: Deps, incident_id: int, action_id: str, user: str
) -> tuple[Outcome, list[Event], Incident | None]:
    with deps.store.session() as s:
        incident = s.get(Incident, incident_id)
        if incident is None:
            return Outcome(False, f"no incident #{incident_id}"), [], None
        if incident.status != "open":
            return (
                Outcome(False, f"incident #{incident_id} is already {incident.status}", incident_id),
                [],
                incident,
            )
        pb = deps.snapshot(incident).playbook
        try:
            step_index, action = pb.action(action_id)
        except KeyError:
            return (
                Outcome(False, f"playbook {pb.name} has no action '{action_id}'", incident_id),
                [],
                incident,
            )
        now = deps.now()
        base: dict[str, Any] = {"playbook": pb.name, "incident_id": incident_id, "at": now, "actor": user}
        pos = position(pb, now - incident.opened_at)
        if pos.index is not None and step_index > pos.index:
            step = pb.ladder[step_index]
            msg = (
                f"'{action.label}' belongs to step {step_index + 1} ({step.name}), which starts at {step.window_text()}"
            )
            return Outcome(False, msg, incident_id), [], incident
        existing = approvals_of(s, incident_id, action_id)
        decided = assign_role(
            action.requires,
            [Approved(a.user_id, a.role) for a in existing],
            user,
            roles_of(pb, user, deps.directory),
        )
        values = _snapshot_values(deps, s, incident, pb, now)
        details: dict[str, Any] = {
            "action": action_id,
            "label": action.label,
            "name": _name(deps, user),
            "values": values,
            "missing": list(decided.missing),
        }
        if decided.result == "complete":
            last = max(existing, key=lambda a: (a.at, a.id or 0))
            by = _who(deps, last.user_id)
            msg = f"'{action.label}' was already fully approved (last by {by} at {last.at:%H:%M:%S} UTC)"
            return Outcome(False, msg, incident_id), [], incident
        role: str | None = decided.role
        if decided.result == "accepted":
            assert decided.role is not None
            slot = sum(1 for a in existing if a.role == decided.role)
            s.add(
                Approval(
                    incident_id=incident_id,
                    action_id=action_id,
                    user_id=user,
                    role=decided.role,
                    slot=slot,
                    at=now,
                    evidence=values,
                )
            )
            rest = f"; still needs {', '.join(decided.missing)}" if decided.missing else "; approvals complete"
            kind = "approval"
            summary = f"{_who(deps, user)} approved '{action.label}' as {decided.role}{rest}"
            reply = f"Approved '{action.label}' as {decided.role}{rest}."
        elif decided.result == "duplicate":
            kind = "approval.duplicate"
            summary = f"{_who(deps, user)} clicked approve on '{action.label}' again"
            reply = f"You {decided.message.removeprefix('you ')}."
        else:
            kind, role = "approval.denied", None
            summary = f"{_who(deps, user)} may not approve '{action.label}': {decided.message}"
            reply = f"You cannot approve '{action.label}': it {decided.message}."
        ev = audit.record(s, kind=kind, role=role, summary=summary, details=details, **base)
        s.commit()
        return Outcome(decided.result == "accepted", reply, incident_id), [ev], incident


def hold(deps: Deps, incident_id: int, user: str) -> Outcome:
    """Pause: no further action stage runs until someone releases the hold."""
    return _set_hold(deps, incident_id, user, hold=True)


def release(deps: Deps, incident_id: int, user: str) -> Outcome:
    outcome = _set_hold(deps, incident_id, user, hold=False)
    if outcome.ok:
        run_due_actions(deps, incident_id)
    return outcome


def _set_hold(deps: Deps, incident_id: int, user: str, *, hold: bool) -> Outcome:
    verb = "hold" if hold else "release"
    with deps.store.session() as s:
        incident = s.get(Incident, incident_id)
        if incident is None:
            return Outcome(False, f"no incident #{incident_id}")
        if incident.status != "open":
            return Outcome(False, f"incident #{incident_id} is already {incident.status}", incident_id)
        pb = deps.snapshot(incident).playbook
        now = deps.now()
        base: dict[str, Any] = {"playbook": pb.name, "incident_id": incident_id, "at": now, "actor": user}
        roles, refused = _gate(deps, s, incident, pb, user, pb.hold.requires, verb, "approval.denied", base)
        if refused:
            return refused
        if hold == (incident.held_by is not None):
            if hold:
                at = f" at {incident.held_at:%H:%M:%S} UTC" if incident.held_at else ""
                return Outcome(False, f"already on hold by {_who(deps, incident.held_by or '?')}{at}", incident_id)
            return Outcome(False, f"incident #{incident_id} is not on hold", incident_id)
        claimed = s.exec(
            update(Incident)
            .where(
                col(Incident.id) == incident_id,
                col(Incident.held_by).is_(None) if hold else col(Incident.held_by).is_not(None),
            )
            .values(held_by=user if hold else None, held_at=now if hold else None)
        )
        if claimed.rowcount != 1:
            return Outcome(
                False, "someone changed the hold at the same moment; look at the incident again", incident_id
            )
        kind = "incident.held" if hold else "incident.released"
        text = "put on hold: no further action stage runs until released" if hold else "hold released"
        ev = audit.record(s, kind=kind, role=sorted(roles)[0], summary=f"{text} by {_who(deps, user)}", **base)
        s.commit()
        s.refresh(incident)
    publish_all(deps.notifier, incident, [ev])
    return Outcome(True, f"incident #{incident_id} {'on hold' if hold else 'released'}", incident_id)


def add_note(deps: Deps, incident_id: int, user: str, text: str) -> Outcome:
    text = text.strip()
    if not text:
        return Outcome(False, "a note needs some text")
    with deps.store.session() as s:
        incident = s.get(Incident, incident_id)
        if incident is None:
            return Outcome(False, f"no incident #{incident_id}")
        ev = audit.record(
            s,
            playbook=incident.playbook,
            incident_id=incident_id,
            kind="note",
            at=deps.now(),
            actor=user,
            summary=f"note by {_who(deps, user)}: {text}",
            details={"text": text, "name": _name(deps, user)},
        )
        s.commit()
    publish_all(deps.notifier, incident, [ev])
    return Outcome(True, "note added", incident_id)


def resolve(deps: Deps, incident_id: int, user: str) -> Outcome:
    """Close the incident and reset its playbook's triggers, so a condition still breached re-fires."""
    with deps.store.session() as s:
        incident = s.get(Incident, incident_id)
        if incident is None:
            return Outcome(False, f"no incident #{incident_id}")
        pb = deps.snapshot(incident).playbook
        now = deps.now()
        if incident.status != "open":
            when = f" at {incident.resolved_at:%H:%M:%S} UTC" if incident.resolved_at else ""
            return Outcome(False, f"already resolved by {_who(deps, incident.resolved_by or '?')}{when}", incident_id)
        base: dict[str, Any] = {"playbook": pb.name, "incident_id": incident_id, "at": now, "actor": user}
        roles, refused = _gate(deps, s, incident, pb, user, pb.resolve.requires, "resolve", "approval.denied", base)
        if refused:
            return refused
        incident.status, incident.resolved_at, incident.resolved_by = "resolved", now, user
        s.add(incident)
        s.exec(delete(TriggerStateRow).where(col(TriggerStateRow.playbook) == pb.name))
        duration = now - incident.opened_at
        ev = audit.record(
            s,
            kind="incident.resolved",
            role=sorted(roles)[0],
            summary=f"resolved by {_who(deps, user)} after {duration.total_seconds() / 3600:.1f} h",
            details={"name": _name(deps, user), "values": _snapshot_values(deps, s, incident, pb, now)},
            **base,
        )
        s.commit()
    publish_all(deps.notifier, incident, [ev])
    return Outcome(True, f"incident #{incident_id} resolved", incident_id)
