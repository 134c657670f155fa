"""Use cases driven by people: acknowledge, approve, hold, release, resolve, add a note. Every attempt is
recorded in one short transaction, allowed or refused, with the role used and the metric values at that
moment; what takes time (an action's webhook) is handed to `deps.background` after the commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer
from sqlmodel import Session, col, delete, update

from rollback_bot.directory import RoleCheck, check_roles
from rollback_bot.flows.actions import run_due_actions
from rollback_bot.flows.deps import Deps, Outcome
from rollback_bot.flows.lapse import lapse_in
from rollback_bot.flows.readings import latest, with_builtins
from rollback_bot.ladder.approvals import Approved, assign_role
from rollback_bot.ladder.steps import position
from rollback_bot.notify import publish_all
from rollback_bot.playbook.models import Playbook
from rollback_bot.store import audit
from rollback_bot.store.actions import approvals_of
from rollback_bot.store.models import Approval, Event, Incident, TriggerStateRow

NOTE_LIMIT = 3000  # characters of a note kept (Slack's section limit); longer notes are cut, saying so


@dataclass
class Scene:
    """What every people flow starts from: the incident, its playbook as it was when it opened, now, who."""

    deps: Deps
    s: Session
    incident: Incident
    pb: Playbook
    now: datetime
    user: str

    @property
    def id(self) -> int:
        assert self.incident.id is not None
        return self.incident.id

    def record(self, kind: str, summary: str, *, role: str | None = None, **details: Any) -> Event:
        return audit.record(
            self.s,
            playbook=self.pb.name,
            incident_id=self.id,
            kind=kind,
            at=self.now,
            actor=self.user,
            role=role,
            summary=summary,
            details={"name": self.deps.directory.display_name(self.user), **details},
        )

    def who(self, user: str | None = None) -> str:
        user = user or self.user
        name = self.deps.directory.display_name(user)
        return f"{name} ({user})" if name != user else user

    def evidence(self) -> dict[str, Any]:
        """The evidence a person acted on: every signal's latest value (or why there is none)."""
        values = with_builtins(
            self.pb, latest(self.s, self.pb, self.now, self.deps.poll_floor), self.incident, self.now
        )
        return {
            name: {"value": r.value, "status": r.status, "at": r.at.isoformat(), "detail": r.detail}
            for name, r in values.items()
        }

    def gate(self, required: Sequence[str], verb: str, denied: str) -> tuple[frozenset[str], Outcome | None]:
        """The roles the person may act in here. Without one, the refusal is recorded and the reply says who
        may; when a role cannot be checked (Slack cannot say who is in a group), that is recorded as such, not
        as a refusal of the person, and they are asked to try again."""
        check = check_roles(self.pb, self.user, self.deps.directory, among=required)
        if check.held:
            return check.held, None
        if check.unknown:
            return check.held, self.cannot_check(check, required, verb)
        needed = " or ".join(dict.fromkeys(required))
        ev = self.record(denied, f"{self.who()} may not {verb}: needs {needed}", action=verb, needs=list(required))
        self.s.commit()
        publish_all(self.deps.notifier, self.incident, [ev])
        return check.held, Outcome(False, f"Only {needed} may {verb} this incident.", self.id)

    def cannot_check(self, check: RoleCheck, required: Sequence[str], verb: str) -> Outcome:
        """A role needed here could not be checked: recorded as such (not a refusal of the person)."""
        self.record(
            "role.unknown",
            f"could not check whether {self.who()} may {verb}: {check.reason}",
            action=verb,
            needs=list(required),
            reason=check.reason,
        )
        self.s.commit()
        msg = f"I cannot check your role right now ({check.reason}). Nothing was refused; try again in a minute."
        return Outcome(False, msg, self.id)

    def done(self, ev: Event, message: str) -> Outcome:
        self.s.commit()
        publish_all(self.deps.notifier, self.incident, [ev])
        return Outcome(True, message, self.id)


def _open(deps: Deps, s: Session, incident_id: int, user: str, *, must_be_open: bool = True) -> Scene | Outcome:
    # the playbook's text is loaded only when this process has not parsed that version yet
    incident = s.get(Incident, incident_id, options=[defer(Incident.playbook_text)])  # type: ignore[arg-type]
    if incident is None:
        return Outcome(False, f"no incident #{incident_id}")
    if must_be_open and incident.status != "open":
        when = f" at {incident.resolved_at:%H:%M:%S} UTC" if incident.resolved_at else ""
        by = f" by {incident.resolved_by}" if incident.resolved_by else ""
        return Outcome(False, f"incident #{incident_id} is already {incident.status}{by}{when}", incident_id)
    return Scene(deps, s, incident, deps.snapshot(incident).playbook, deps.now(), user)


def acknowledge(deps: Deps, incident_id: int, user: str) -> Outcome:
    with deps.store.session() as s:
        scene = _open(deps, s, incident_id, user)
        if isinstance(scene, Outcome):
            return scene
        roles, refused = scene.gate(scene.pb.acknowledge.requires, "acknowledge", "ack.denied")
        if refused:
            return refused
        claimed = s.exec(
            update(Incident)
            .where(col(Incident.id) == incident_id, col(Incident.acknowledged_by).is_(None))
            .values(acknowledged_by=user, acknowledged_at=scene.now)
        )
        if claimed.rowcount != 1:
            s.rollback()
            s.refresh(scene.incident)
            at = scene.incident.acknowledged_at
            when = f" at {at:%H:%M:%S} UTC" if at else ""
            return Outcome(
                False, f"already acknowledged by {scene.who(scene.incident.acknowledged_by)}{when}", incident_id
            )
        role = sorted(roles)[0]
        minutes = (scene.now - scene.incident.opened_at).total_seconds() / 60
        ev = scene.record(
            "ack",
            f"acknowledged by {scene.who()} as {role} after {minutes:.1f} min",
            role=role,
            minutes_to_ack=minutes,
            values=scene.evidence(),
        )
        return scene.done(ev, f"acknowledged incident #{incident_id}")


def approve(deps: Deps, incident_id: int, action_id: str, user: str) -> Outcome:
    """Record one approval. When the action's approvals are complete, its first stage is handed to
    `deps.background`: the approver's answer never waits for the webhook."""
    for attempt in range(3):
        try:
            outcome = _approve_once(deps, incident_id, action_id, user)
            break
        except IntegrityError:  # someone filled the same slot at the same moment; decide again
            if attempt == 2:
                raise
    if outcome.ok and outcome.complete:
        deps.background(lambda: run_due_actions(deps, incident_id))
    return outcome


def _approve_once(deps: Deps, incident_id: int, action_id: str, user: str) -> Outcome:
    with deps.store.session() as s:
        scene = _open(deps, s, incident_id, user)
        if isinstance(scene, Outcome):
            return scene
        pb = scene.pb
        try:
            step_index, action = pb.action(action_id)
        except KeyError:
            return Outcome(False, f"playbook {pb.name} has no action '{action_id}'", incident_id)
        pos = position(pb, scene.now - scene.incident.opened_at)
        if pos.index is not None and step_index > pos.index:
            step = pb.ladder[step_index]
            when = step.window_text()
            return Outcome(
                False,
                f"'{action.label}' belongs to step {step_index + 1} ({step.name}), which starts at {when}",
                incident_id,
            )
        lapses = lapse_in(deps, s, scene.incident, pb, scene.now, only=action_id)
        if lapses:  # what no longer stands is withdrawn (and said) before this approval counts
            s.commit()
            publish_all(deps.notifier, scene.incident, lapses)
        lapsed_note = "".join(f" An earlier approval lapsed: {ev.details['reason']}." for ev in lapses)
        existing = approvals_of(s, incident_id=incident_id, action_id=action_id)
        approved = [Approved(a.user_id, a.role) for a in existing]
        check = check_roles(pb, user, deps.directory, among=action.requires)
        decided = assign_role(action.requires, approved, user, set(check.held))
        if decided.result == "complete":
            last = existing[-1]
            by = scene.who(last.user_id)
            msg = f"'{action.label}' was already fully approved (last by {by} at {last.at:%H:%M:%S} UTC)"
            return Outcome(False, msg, incident_id)
        if decided.result == "denied" and check.unknown:
            # a role still missing may be one the person holds (they may hold another, already filled, one)
            return scene.cannot_check(check, action.requires, f"approve '{action.label}'")
        evidence = scene.evidence()
        common: dict[str, Any] = {"action": action_id, "label": action.label, "missing": list(decided.missing)}
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
                    at=scene.now,
                    evidence=evidence,
                )
            )
            if decided.missing:
                rest = f"; still needs {', '.join(decided.missing)}"
                reply = f"Approved '{action.label}' as {decided.role}{rest}.{lapsed_note}"
            else:
                rest = "; approvals complete"
                first = f" (stage {action.stage_list[0]:g}%)" if action.stages else ""
                reply = f"Approved '{action.label}' as {decided.role}; approvals complete: it starts now{first}."
            ev = scene.record(
                "approval",
                f"{scene.who()} approved '{action.label}' as {decided.role}{rest}",
                role=decided.role,
                values=evidence,
                **common,
            )
            s.commit()
            publish_all(deps.notifier, scene.incident, [ev])
            return Outcome(True, reply, incident_id, complete=not decided.missing)
        if decided.result == "duplicate":
            ev = scene.record(
                "approval.duplicate",
                f"{scene.who()} clicked approve on '{action.label}' again",
                values=evidence,
                **common,
            )
            reply = f"You {decided.message.removeprefix('you ')}."
        else:
            summary = f"{scene.who()} may not approve '{action.label}': {decided.message}"
            ev = scene.record("approval.denied", summary, values=evidence, **common)
            reply = f"You cannot approve '{action.label}': it {decided.message}."
        s.commit()
        publish_all(deps.notifier, scene.incident, [ev])
        return Outcome(False, reply, incident_id)


def hold(deps: Deps, incident_id: int, user: str) -> Outcome:
    """Pause: no further action stage runs until someone releases the hold."""
    return _set_hold(deps, incident_id, user, hold=True)


def release(deps: Deps, incident_id: int, user: str) -> Outcome:
    outcome = _set_hold(deps, incident_id, user, hold=False)
    if outcome.ok:
        deps.background(lambda: run_due_actions(deps, incident_id))
    return outcome


def _set_hold(deps: Deps, incident_id: int, user: str, *, hold: bool) -> Outcome:
    verb = "hold" if hold else "release"
    with deps.store.session() as s:
        scene = _open(deps, s, incident_id, user)
        if isinstance(scene, Outcome):
            return scene
        incident = scene.incident
        roles, refused = scene.gate(scene.pb.hold.requires, verb, "hold.denied")
        if refused:
            return refused
        if hold == (incident.held_by is not None):
            if hold:
                at = f" at {incident.held_at:%H:%M:%S} UTC" if incident.held_at else ""
                return Outcome(False, f"already on hold by {scene.who(incident.held_by)}{at}", incident_id)
            return Outcome(False, f"incident #{incident_id} is not on hold", incident_id)
        claimed = s.exec(
            update(Incident)
            .where(
                col(Incident.id) == incident_id,
                col(Incident.held_by).is_(None) if hold else col(Incident.held_by).is_not(None),
            )
            .values(held_by=user if hold else None, held_at=scene.now if hold else None)
        )
        if claimed.rowcount != 1:
            s.rollback()
            return Outcome(
                False, "someone changed the hold at the same moment; look at the incident again", incident_id
            )
        kind = "incident.held" if hold else "incident.released"
        text = "put on hold: no further action stage runs until released" if hold else "hold released"
        ev = scene.record(kind, f"{text} by {scene.who()}", role=sorted(roles)[0])
        return scene.done(ev, f"incident #{incident_id} {'on hold' if hold else 'released'}")


def add_note(deps: Deps, incident_id: int, user: str, text: str) -> Outcome:
    """A note in the timeline, by someone holding one of the playbook's roles."""
    text = text.strip()
    if not text:
        return Outcome(False, "a note needs some text")
    with deps.store.session() as s:
        scene = _open(deps, s, incident_id, user, must_be_open=False)
        if isinstance(scene, Outcome):
            return scene
        _, refused = scene.gate(list(scene.pb.roles), "add a note to", "access.denied")
        if refused:
            return refused
        kept = text if len(text) <= NOTE_LIMIT else text[: NOTE_LIMIT - 1] + "\u2026"
        ev = scene.record("note", f"note by {scene.who()}: {kept}", text=kept)
        return scene.done(ev, "note added" if kept == text else f"note added (cut to {NOTE_LIMIT} characters)")


def resolve(deps: Deps, incident_id: int, user: str) -> Outcome:
    """Close the incident and reset its playbook's triggers, so a condition still breached re-fires."""
    with deps.store.session() as s:
        scene = _open(deps, s, incident_id, user)
        if isinstance(scene, Outcome):
            return scene
        roles, refused = scene.gate(scene.pb.resolve.requires, "resolve", "resolve.denied")
        if refused:
            return refused
        claimed = s.exec(
            update(Incident)
            .where(col(Incident.id) == incident_id, col(Incident.status) == "open")
            .values(status="resolved", resolved_at=scene.now, resolved_by=user)
        )
        if claimed.rowcount != 1:
            s.rollback()
            return Outcome(
                False, f"incident #{incident_id} was resolved at the same moment by someone else", incident_id
            )
        s.exec(delete(TriggerStateRow).where(col(TriggerStateRow.playbook) == scene.pb.name))
        hours = (scene.now - scene.incident.opened_at).total_seconds() / 3600
        ev = scene.record(
            "incident.resolved",
            f"resolved by {scene.who()} after {hours:.1f} h",
            role=sorted(roles)[0],
            values=scene.evidence(),
        )
        s.refresh(scene.incident)
        return scene.done(ev, f"incident #{incident_id} resolved")
