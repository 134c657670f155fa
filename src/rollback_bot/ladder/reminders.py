"""Which reminders an incident is owed, and whom each names. Pure: the flow claims and records them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from rollback_bot.playbook.models import Playbook


@dataclass(frozen=True)
class ReminderPlan:
    key: str  # unique per incident: each reminder goes out once
    due: timedelta  # elapsed time since the incident opened
    roles: tuple[str, ...]  # whose holders it mentions


def ack_reminders(pb: Playbook) -> list[ReminderPlan]:
    """Unacknowledged after `within`: remind the acknowledging roles; every `within` more, add the
    next escalation role. No reminders after the last escalation."""
    ack = pb.acknowledge
    plans = []
    for k in range(len(ack.escalate) + 1):
        roles = tuple(dict.fromkeys([*ack.requires, *ack.escalate[:k]]))
        plans.append(ReminderPlan(f"ack:{k + 1}", ack.within * (k + 1), roles))
    return plans


def latest_due(plans: list[ReminderPlan], elapsed: timedelta) -> tuple[ReminderPlan | None, list[ReminderPlan]]:
    """The newest plan due now, and the older due ones it supersedes (after downtime, send one, not all)."""
    due = [p for p in plans if p.due <= elapsed]
    if not due:
        return None, []
    return due[-1], due[:-1]


def step_end_reminder(pb: Playbook, index: int) -> ReminderPlan:
    step = pb.ladder[index]
    due = max(step.start, step.end - pb.reminders.before_step_end)
    return ReminderPlan(f"step:{index + 1}", due, tuple(pb.reminders.escalate))
