"""Pure ladder logic: which step is current, what an action still needs, which stage is due. No I/O."""

from rollback_bot.ladder.approvals import ApprovalOutcome, Approved, assign_role, missing_roles
from rollback_bot.ladder.stages import StageRun, next_stage
from rollback_bot.ladder.steps import Position, position

__all__ = [
    "ApprovalOutcome",
    "Approved",
    "Position",
    "StageRun",
    "assign_role",
    "missing_roles",
    "next_stage",
    "position",
]
