"""Use case: approvals bound to their evidence. Before an action starts, an approval that no longer stands
(ladder/lapse.py) is withdrawn in the same transaction that records why (`approval.lapsed`, with the evidence
it was given on and the values now), and whose approval it was is mentioned and asked again (with the
playbook's escalation roles when it says so). Checked at every ladder tick, before any action stage is
claimed, and when someone approves the same action."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, delete

from rollback_bot.directory import holders
from rollback_bot.flows.deps import Deps
from rollback_bot.flows.readings import latest, with_builtins
from rollback_bot.ladder.lapse import Given, lapsed
from rollback_bot.notify import publish_all
from rollback_bot.playbook.models import ActionSpec, Playbook
from rollback_bot.rules.readings import Reading
from rollback_bot.store import audit
from rollback_bot.store.actions import approvals_by_action, runs_by_action
from rollback_bot.store.models import Approval, Event, Incident, TriggerStateRow


def lapse_approvals(deps: Deps, incident_id: int) -> list[Event]:
    """Withdraw the incident's approvals that no longer stand; the events, published."""
    with deps.store.session() as s:
        incident = s.get(Incident, incident_id)
        if incident is None or incident.status != "open":
            return []
        events = lapse_in(deps, s, incident, deps.snapshot(incident).playbook, deps.now())
        if events:
            s.commit()
    publish_all(deps.notifier, incident, events)
    return events


def lapse_in(
    deps: Deps, s: Session, incident: Incident, pb: Playbook, now: datetime, *, only: str | None = None
) -> list[Event]:
    """In the caller's transaction (the caller commits and publishes): withdraw what lapsed, record why."""
    assert incident.id is not None
    approvals = approvals_by_action(s, incident_id=incident.id)
    if not any(approvals.values()):
        return []
    runs = runs_by_action(s, incident_id=incident.id)
    values: dict[str, Reading] | None = None
    events: list[Event] = []
    for step in pb.ladder:
        for action in step.actions:
            mine = approvals.get(action.id) or []
            if (only is not None and action.id != only) or not mine or runs.get(action.id):
                continue  # nothing given, or the action has started: what it was approved on is spent
            spec = action.lapse
            if values is None and spec.when:
                values = with_builtins(pb, latest(s, pb, now, deps.poll_floor), incident, now)
            cleared = _trigger_cleared(s, pb, incident) if spec.trigger_cleared else None
            given = [Given(a.user_id, a.role, a.at, a.evidence) for a in mine]
            gone = lapsed(spec, given, now, values or {}, trigger=incident.trigger, trigger_cleared=cleared)
            escalate = spec.escalate if spec.then == "escalate" else []
            escalated = sorted({p for r in escalate for p in holders(pb, r, deps.directory)}) if gone else []
            for lapse in gone:
                approval = next(a for a in mine if a.user_id == lapse.given.user)
                took = s.exec(delete(Approval).where(col(Approval.id) == approval.id))
                if took.rowcount != 1:  # another process withdrew it first, and recorded it
                    continue
                extra: dict[str, Any] = {
                    "rule": lapse.rule,
                    "mentions": [approval.user_id, *(p for p in escalated if p != approval.user_id)],
                }
                if spec.then == "escalate":
                    extra["escalate"] = list(spec.escalate)
                events.append(_record(deps, s, incident, pb, action, approval, lapse.reason, extra, now))
    return events


def _trigger_cleared(s: Session, pb: Playbook, incident: Incident) -> bool | None:
    row = s.get(TriggerStateRow, (pb.name, incident.trigger))
    return None if row is None else not row.firing  # no state (a rollout's incident): unknown, decides nothing


def _record(
    deps: Deps,
    s: Session,
    incident: Incident,
    pb: Playbook,
    action: ActionSpec,
    approval: Approval,
    reason: str,
    extra: dict[str, Any],
    now: datetime,
) -> Event:
    name = deps.directory.display_name(approval.user_id)
    who = f"{name} ({approval.user_id})" if name != approval.user_id else approval.user_id
    then = action.lapse.then
    ask = "approve again if it still stands" + (
        f" (escalated to {', '.join(action.lapse.escalate)})" if then == "escalate" else ""
    )
    details: dict[str, Any] = {
        "action": approval.action_id,
        "label": action.label,
        "user": approval.user_id,
        "role": approval.role,
        "approved_at": approval.at.isoformat(),
        "reason": reason,
        "then": then,
        "given_on": approval.evidence,
        "name": name,
        **extra,
    }
    return audit.record(
        s,
        playbook=pb.name,
        incident_id=incident.id,
        kind="approval.lapsed",
        at=now,
        actor=None,
        role=approval.role,
        summary=f"{who}'s approval of '{action.label}' as {approval.role} lapsed: {reason}; {ask}",
        details=details,
    )
