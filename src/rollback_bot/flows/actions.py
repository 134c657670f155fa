"""Use case: run approved actions, one stage at a time, each stage exactly once (idempotent webhook)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from rollback_bot import webhooks
from rollback_bot.flows.deps import Deps
from rollback_bot.ladder.approvals import Approved, is_complete
from rollback_bot.ladder.stages import StageRun, next_stage
from rollback_bot.notify import publish_all
from rollback_bot.playbook.models import ActionSpec, Playbook, WebhookSpec
from rollback_bot.render.comms import render_value
from rollback_bot.render.context import webhook_context
from rollback_bot.store import audit, leader
from rollback_bot.store.actions import approvals_by_action, runs_by_action
from rollback_bot.store.models import ActionRun, Event, Incident
from rollback_bot.telemetry import ACTIONS

log = logging.getLogger(__name__)


def idempotency_key(playbook: str, incident_id: int, action_id: str, stage: float) -> str:
    return f"rollback-bot/{playbook}/{incident_id}/{action_id}/{stage:g}"


def _lease(action: ActionSpec, backoff: float) -> timedelta:
    """How long a 'running' stage may go unfinished before another worker may resend it (its worker died):
    every attempt's timeout, the backoff between them (as webhooks.send waits), and a margin."""
    hook = action.webhook
    waits = sum(min(backoff * 2**i, 8.0) for i in range(hook.retries))
    return hook.timeout * (hook.retries + 1) + timedelta(seconds=waits + 5)


def resend_at(deps: Deps, action: ActionSpec, run: ActionRun) -> datetime | None:
    """When a stage still running may be sent again (its sender died: same Idempotency-Key): at once when an
    earlier leader sent it and this process leads now (that one acts no more), else when its lease runs out."""
    if run.status != "running":
        return None
    token = leader.acting_token()
    if token is not None and run.token is not None and run.token < token:
        return run.started_at
    return run.started_at + _lease(action, deps.webhook_backoff)


def run_due_actions(deps: Deps, incident_id: int) -> None:
    """Start every stage that is due: approvals complete (and still standing), previous stage done,
    stage_every passed."""
    from rollback_bot.flows.lapse import lapse_approvals

    lapse_approvals(deps, incident_id)
    while True:
        claim = _claim_next(deps, incident_id)
        if claim is None:
            return
        _execute(deps, *claim)


def _claim_next(deps: Deps, incident_id: int) -> tuple[Incident, ActionSpec, ActionRun] | None:
    with deps.store.session() as s:
        incident = s.get(Incident, incident_id)
        if incident is None or incident.status != "open" or incident.held_by is not None:
            return None
        pb = deps.snapshot(incident).playbook
        now = deps.now()
        runs_by = runs_by_action(s, incident_id=incident_id)
        for action in _approved_actions(s, pb, incident_id):
            runs = runs_by.get(action.id, [])
            orphan = next((r for r in runs if (at := resend_at(deps, action, r)) is not None and at <= now), None)
            if orphan is not None:  # its worker died mid-send; the same Idempotency-Key makes a resend safe
                orphan.started_at, orphan.token = now, leader.acting_token()
                s.add(orphan)
                leader.check_current(s)  # a scheduler that lost its lease resends nothing (store/leader.py)
                s.commit()
                return incident, action, orphan
            stage = next_stage(action, [StageRun(r.stage, r.status, r.finished_at) for r in runs], now)
            if stage is None:
                continue
            run = ActionRun(
                incident_id=incident_id,
                action_id=action.id,
                stage=stage,
                idempotency_key=idempotency_key(pb.name, incident_id, action.id, stage),
                started_at=now,
                token=leader.acting_token(),
            )
            s.add(run)
            try:
                ev = _started_event(s, incident, action, stage, now)
                s.commit()
            except IntegrityError:  # another worker claimed this stage first
                s.rollback()
                continue
            publish_all(deps.notifier, incident, [ev])
            return incident, action, run
    return None


def _approved_actions(s: Session, pb: Playbook, incident_id: int) -> list[ActionSpec]:
    approvals = approvals_by_action(s, incident_id=incident_id)
    return [
        action
        for step in pb.ladder
        for action in step.actions
        if is_complete(action.requires, [Approved(a.user_id, a.role) for a in approvals.get(action.id, [])])
    ]


def _started_event(s: Session, incident: Incident, action: ActionSpec, stage: float, now: datetime) -> Event:
    staged = f" stage {stage:g}%" if action.stages else ""
    return audit.record(
        s,
        playbook=incident.playbook,
        incident_id=incident.id,
        kind="action.started",
        at=now,
        summary=f"{action.label}{staged}: started",
        details={"action": action.id, "stage": stage},
    )


def call_webhook(
    deps: Deps, spec: WebhookSpec, ctx: dict[str, Any], idempotency_key: str, what: str
) -> webhooks.WebhookResult:
    """Render the webhook's url and body with `ctx` and send it; a template or transport bug becomes a failed
    result to record, never an exception."""
    try:
        url = str(render_value(spec.url, ctx, ("url",)))
        body = render_value(spec.body, ctx, ("body",))
        return webhooks.send(
            deps.http, spec, url, body, idempotency_key, sleep=deps.sleep, backoff=deps.webhook_backoff
        )
    except Exception as exc:  # a template or transport bug must be recorded, not lost
        log.exception("%s failed before sending", what)
        return webhooks.WebhookResult(False, None, 0, f"{type(exc).__name__}: {exc}"[:300])


def _execute(deps: Deps, incident: Incident, action: ActionSpec, run: ActionRun) -> None:
    assert incident.id is not None
    pb = deps.snapshot(incident).playbook
    ctx = webhook_context(pb, incident.id, action.id, run.stage)
    result = call_webhook(deps, action.webhook, ctx, run.idempotency_key, f"action {action.id}")
    staged = f" stage {run.stage:g}%" if action.stages else ""
    with deps.store.session() as s:
        row = s.get(ActionRun, run.id)
        assert row is not None
        row.status = "succeeded" if result.ok else "failed"
        row.attempts += result.attempts
        row.http_status = result.status
        row.response = result.response
        row.finished_at = deps.now()
        s.add(row)
        outcome = "succeeded" if result.ok else "failed"
        ACTIONS.labels(playbook=incident.playbook, outcome=outcome).inc()
        status = f"HTTP {result.status}" if result.status else result.response
        ev = audit.record(
            s,
            playbook=incident.playbook,
            incident_id=incident.id,
            kind=f"action.{outcome}",
            at=row.finished_at,
            summary=f"{action.label}{staged}: {outcome} ({status}, {result.attempts} attempt(s))",
            details={
                "action": action.id,
                "stage": run.stage,
                "http_status": result.status,
                "attempts": result.attempts,
                "response": result.response,
                "headers": result.headers,
                "idempotency_key": run.idempotency_key,
                "last_stage": run.stage == action.stage_list[-1],
            },
        )
        s.commit()
    publish_all(deps.notifier, incident, [ev])
