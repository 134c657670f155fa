"""Who holds which role. Roles list Slack user IDs and user groups; a Directory resolves groups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from rollback_bot.playbook.models import Playbook


class Directory(Protocol):
    def group_members(self, group_id: str) -> set[str]: ...

    def display_name(self, user_id: str) -> str: ...


class StaticDirectory:
    """Groups and names known up front (drills, tests, teams without Slack user groups)."""

    def __init__(self, groups: Mapping[str, set[str]] | None = None, names: Mapping[str, str] | None = None):
        self.groups = {k: set(v) for k, v in (groups or {}).items()}
        self.names = dict(names or {})

    def group_members(self, group_id: str) -> set[str]:
        return set(self.groups.get(group_id, set()))

    def display_name(self, user_id: str) -> str:
        return self.names.get(user_id, user_id)


def roles_of(pb: Playbook, user_id: str, directory: Directory) -> set[str]:
    held = set()
    for role, spec in pb.roles.items():
        if user_id in spec.users or any(user_id in directory.group_members(g) for g in spec.groups):
            held.add(role)
    return held


def holders(pb: Playbook, role: str, directory: Directory) -> set[str]:
    spec = pb.roles.get(role)
    if spec is None:
        return set()
    people = set(spec.users)
    for g in spec.groups:
        people |= directory.group_members(g)
    return people
