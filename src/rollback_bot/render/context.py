"""The variables templates see. One place, so `check` renders with exactly what incidents provide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rollback_bot.ladder.steps import position
from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.models import Playbook
from rollback_bot.rules.watch import WatchRow


def comms_context(
    pb: Playbook,
    *,
    incident: dict[str, Any],
    step_index: int,
    elapsed: timedelta,
    watch: list[WatchRow],
    now: datetime,
) -> dict[str, Any]:
    step = pb.ladder[step_index]
    pos = position(pb, elapsed)
    nxt = pb.ladder[step_index + 1] if step_index + 1 < len(pb.ladder) else None
    return {
        "playbook": {"name": pb.name, "service": pb.service, "channel": pb.channel, "description": pb.description},
        "service": pb.service,
        "incident": incident,
        "step": {
            "number": step_index + 1,
            "of": len(pb.ladder),
            "name": step.name,
            "window": step.window_text(),
            "time_left": format_duration(pos.time_left) if pos.time_left is not None else "0s",
            "actions": [{"id": a.id, "label": a.label, "requires": a.requires} for a in step.actions],
        },
        "next_step": {"name": nxt.name, "window": nxt.window_text()} if nxt else None,
        "watch": [
            {
                "signal": r.signal,
                "label": pb.signal_labels.get(r.signal, r.signal),
                "rule": r.rule,
                "value": "no data" if r.value is None else f"{r.value:.4g}",
                "status": r.status,
            }
            for r in watch
        ],
        "breached": [r.signal for r in watch if r.status == "breached"],
        "elapsed": format_duration(elapsed),
        "now": now.strftime("%Y-%m-%d %H:%M UTC"),
    }


def sample_context(pb: Playbook, step_index: int) -> dict[str, Any]:
    """A realistic context for checking templates before any incident exists."""
    step = pb.ladder[step_index]
    trigger = next(iter(pb.triggers))
    incident = {
        "id": 1,
        "severity": pb.triggers[trigger].severity,
        "trigger": trigger,
        "summary": f"{trigger}: {pb.triggers[trigger].describe()}",
        "opened_at": "2026-01-01 00:00 UTC",
        "acknowledged_by": None if step_index == 0 else "Sam Ple",  # the first step: not yet acknowledged
        "status": "open",
    }
    watch = [WatchRow(c.signal, str(c), c.threshold, "ok") for c in step.watch]
    now = datetime(2026, 1, 1, tzinfo=UTC) + step.start
    return comms_context(pb, incident=incident, step_index=step_index, elapsed=step.start, watch=watch, now=now)


def webhook_context(pb: Playbook, incident_id: int, action_id: str, stage: float) -> dict[str, Any]:
    return {
        "service": pb.service,
        "playbook": pb.name,
        "incident": incident_id,
        "action": action_id,
        "stage": f"{stage:g}",
    }
