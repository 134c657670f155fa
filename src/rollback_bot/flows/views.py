"""Read models: everything a message about one incident, or one rollout, shows, gathered in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from rollback_bot.flows.deps import Deps
from rollback_bot.flows.readings import latest, with_builtins
from rollback_bot.ladder.approvals import Approved, missing_roles
from rollback_bot.ladder.steps import Position, position
from rollback_bot.playbook.models import ActionSpec, Playbook, RolloutSpec, RolloutStageSpec
from rollback_bot.rollout.gate import Decision, decide
from rollback_bot.rules.watch import WatchRow, watch_rows
from rollback_bot.store import rollouts as store_rollouts
from rollback_bot.store.actions import approvals_by_action, runs_by_action
from rollback_bot.store.models import Event, Incident, Rollout


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


@dataclass(frozen=True)
class RolloutView:
    rollout: Rollout
    playbook: Playbook
    decision: Decision | None  # the gate at its last look, for a rollout under way; None before it or once finished
    now: datetime

    @property
    def spec(self) -> RolloutSpec:
        assert self.playbook.rollout is not None
        return self.playbook.rollout

    @property
    def stage(self) -> RolloutStageSpec:
        return self.spec.stages[self.rollout.stage]

    @property
    def next_stage(self) -> RolloutStageSpec | None:
        stages = self.spec.stages
        return stages[self.rollout.stage + 1] if self.rollout.stage + 1 < len(stages) else None

    @property
    def active(self) -> bool:
        return self.rollout.status in store_rollouts.ACTIVE


def build_rollout_view(s: Session, rollout: Rollout, pb: Playbook, now: datetime) -> RolloutView:
    """The rollout as its message shows it: for one under way, the gate's decision as of its last look (pure,
    from the stored readings), which is the verdict stored and the one an advance is checked against."""
    assert rollout.id is not None and pb.rollout is not None
    decision = None
    if rollout.status in store_rollouts.ACTIVE and rollout.verdict and rollout.looked_at is not None:
        points = store_rollouts.points_since(s, rollout_id=rollout.id, since=rollout.stage_started_at)
        decision = decide(pb.rollout, rollout.stage, rollout.stage_started_at, rollout.looked_at, points)
    return RolloutView(rollout, pb, decision, now)
