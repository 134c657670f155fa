"""Use cases: gather inputs, call the pure core, write store + audit in one transaction, then notify."""

from rollback_bot.flows.actions import run_due_actions
from rollback_bot.flows.deps import Deps, Outcome
from rollback_bot.flows.ladder import advance, next_step_due, open_incidents, tick
from rollback_bot.flows.people import acknowledge, add_note, approve, hold, release, resolve
from rollback_bot.flows.reminders import send_due_reminders
from rollback_bot.flows.watch import evaluate, poll, poll_alerts
from rollback_bot.flows.watchdog import check_polling, polling_status

__all__ = [
    "Deps",
    "Outcome",
    "acknowledge",
    "add_note",
    "advance",
    "approve",
    "check_polling",
    "evaluate",
    "hold",
    "next_step_due",
    "open_incidents",
    "poll",
    "poll_alerts",
    "polling_status",
    "release",
    "resolve",
    "run_due_actions",
    "send_due_reminders",
    "tick",
]
