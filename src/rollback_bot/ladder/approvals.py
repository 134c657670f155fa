"""Who may approve: one approval per entry of `requires`, each by a distinct person holding that role."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Approved:
    user: str
    role: str


@dataclass(frozen=True)
class ApprovalOutcome:
    result: Literal["accepted", "denied", "duplicate", "complete"]
    role: str | None  # the role the approval fills (accepted), or the roles needed (denied)
    missing: tuple[str, ...]  # roles still missing after this approval
    message: str


def missing_roles(requires: Sequence[str], approvals: Iterable[Approved]) -> tuple[str, ...]:
    """The multiset `requires` minus the roles already filled, in playbook order."""
    filled = Counter(a.role for a in approvals)
    out = []
    for role in requires:
        if filled[role]:
            filled[role] -= 1
        else:
            out.append(role)
    return tuple(out)


def is_complete(requires: Sequence[str], approvals: Iterable[Approved]) -> bool:
    """Every role `requires` names has its approval (an action requiring nobody is never 'approved')."""
    approvals = list(approvals)
    return bool(approvals) and not missing_roles(requires, approvals)


def assign_role(
    requires: Sequence[str], approvals: Sequence[Approved], user: str, user_roles: set[str]
) -> ApprovalOutcome:
    """Decide what one more approval by `user` does. Pure: the caller records the outcome."""
    missing = missing_roles(requires, approvals)
    if not missing:
        return ApprovalOutcome("complete", None, (), "already fully approved")
    if any(a.user == user for a in approvals):
        mine = next(a.role for a in approvals if a.user == user)
        return ApprovalOutcome(
            "duplicate",
            mine,
            missing,
            f"you already approved as {mine}; still needs {_names(missing)} from someone else",
        )
    for role in missing:
        if role in user_roles:
            rest = list(missing)
            rest.remove(role)
            return ApprovalOutcome("accepted", role, tuple(rest), f"approved as {role}")
    return ApprovalOutcome("denied", None, missing, f"needs the role {_names(missing)}")


def _names(roles: Sequence[str]) -> str:
    unique = list(dict.fromkeys(roles))
    return " or ".join(unique) if len(unique) > 1 else unique[0]
