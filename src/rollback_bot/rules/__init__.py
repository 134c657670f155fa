"""Pure rule evaluation: readings + rule state + now -> decisions. No I/O."""

from rollback_bot.rules.evaluate import Decision, Evidence, TriggerState, evaluate, kpi_score, step_trigger
from rollback_bot.rules.health import SignalHealth, track
from rollback_bot.rules.readings import Reading

__all__ = [
    "Decision",
    "Evidence",
    "Reading",
    "SignalHealth",
    "TriggerState",
    "evaluate",
    "kpi_score",
    "step_trigger",
    "track",
]
