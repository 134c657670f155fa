"""Drills: a sandboxed model with an injected fault, the whole ladder in compressed time, a timing report."""

from rollback_bot.drill.run import run_drill

__all__ = ["run_drill"]
