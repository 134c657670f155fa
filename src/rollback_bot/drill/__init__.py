"""Drills: a sandboxed model with an injected fault, the whole ladder (or a playbook's rollout) in compressed time,
a report of what was seen against what was due."""

from rollback_bot.drill.run import run_drill

__all__ = ["run_drill"]
