"""Read model: everything a message about one incident shows, gathered in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from rollback_bot.flows.deps import Deps
from rollback_bot.flows.readings import latest, with_builtins
from rollback_bot.ladder.approvals import Approved, missing_roles
from rollback_bot.ladder.steps import Position, position
from rollback_bot.playbook.models import ActionSpec, Playbook
from rollback_bot.rules.watch import WatchRow, watch_rows
from rollback_bot.store.actions import approvals_by_action, runs_by_action
from rollback_bot.store.models import Event, Incident


@dataclass(frozen=True)
class ApprovalView:
    user: str
    role: str
    at: datetime


@dataclass(frozen=True)
class ActionView:
    spec: ActionSpec
    step_index: int
    approvals: tuple[ApprovalView, ...]
    missing: tuple[str, ...]
    stages: tuple[tuple[float, str], ...]  # (stage, running|succeeded|failed|pending)

    @property
    def approvable(self) -> bool:
        return bool(self.missing)


@dataclass(frozen=True)
class IncidentView:
    incident: Incident
    playbook: Playbook
    position: Position
    watch: list[WatchRow]
    actions: list[ActionView]  # actions of the steps reached so far, current step last
    attached: list[str]  # triggers that fired after the one that opened the incident
    now: datetime

    @property
    def is_open(self) -> bool:
        return self.incident.status == "open"

    @property
    def evidence(self) -> list[dict[str, Any]]:
        return list(self.incident.evidence.get("evidence", []))


def incident_view(deps: Deps, incident_id: int) -> IncidentView | None:
    with deps.store.session() as s:
        incident = s.get(Incident, incident_id)
        if incident is None:
            return None
        return build_view(deps, s, incident)


def build_view(deps: Deps, s: Session, incident: Incident) -> IncidentView:
    assert incident.id is not None
    pb = deps.snapshot(incident).playbook
    now = deps.now() if incident.status == "open" else (incident.resolved_at or deps.now())
    pos = position(pb, now - incident.opened_at)
    step_index = pos.index if pos.index is not None else len(pb.ladder) - 1
    values = with_builtins(pb, latest(s, pb, deps.now(), deps.poll_floor), incident, deps.now())
    watch = watch_rows(pb.ladder[step_index].watch, values)
    actions = []
    approvals_by = approvals_by_action(s, incident_id=incident.id)
    runs_by = runs_by_action(s, incident_id=incident.id)
    for index, step in enumerate(pb.ladder[: step_index + 1]):
        for spec in step.actions:
            approvals = approvals_by.get(spec.id, [])
            views = [ApprovalView(a.user_id, a.role, a.at) for a in approvals]
            runs = {r.stage: r.status for r in runs_by.get(spec.id, [])}
            actions.append(
                ActionView(
                    spec,
                    index,
                    tuple(views),
                    missing_roles(spec.requires, [Approved(a.user_id, a.role) for a in approvals]),
                    tuple((stage, runs.get(stage, "pending")) for stage in spec.stage_list),
                )
            )
    attached = [
        str(e.details.get("trigger"))
        for e in s.exec(select(Event).where(Event.incident_id == incident.id, Event.kind == "trigger.attached"))
    ]
    return IncidentView(incident, pb, pos, watch, actions, attached, now)
