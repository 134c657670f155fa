"""Who holds which role. Roles list Slack user IDs and user groups; a Directory resolves groups. When a group
cannot be read, the role is 'unknown' for that person, never 'not held': the caller says so and asks again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from rollback_bot.playbook.models import Playbook


class MembershipUnknown(Exception):
    """A group's members cannot be read now (Slack down, rate limited) and no recent enough copy is known."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Directory(Protocol):
    def group_members(self, group_id: str, *, fresh: bool = False) -> set[str]:
        """Members of a user group; `fresh` asks for a re-read (before refusing someone). May raise
        MembershipUnknown."""
        ...

    def display_name(self, user_id: str) -> str: ...


class StaticDirectory:
    """Groups and names known up front (drills, tests, teams without Slack user groups)."""

    def __init__(self, groups: Mapping[str, set[str]] | None = None, names: Mapping[str, str] | None = None):
        self.groups = {k: set(v) for k, v in (groups or {}).items()}
        self.names = dict(names or {})

    def group_members(self, group_id: str, *, fresh: bool = False) -> set[str]:
        return set(self.groups.get(group_id, set()))

    def display_name(self, user_id: str) -> str:
        return self.names.get(user_id, user_id)


@dataclass(frozen=True)
class RoleCheck:
    """The roles a person holds among those asked about, and the roles that could not be checked (and why)."""

    held: frozenset[str]
    unknown: Mapping[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return "; ".join(dict.fromkeys(self.unknown.values()))


def check_roles(pb: Playbook, user_id: str, directory: Directory, among: Iterable[str] | None = None) -> RoleCheck:
    """Which of `among` (default: every role of the playbook) `user_id` holds. Group members come from the
    directory's cache first; only when that would refuse the person are the groups re-read."""
    roles = [r for r in dict.fromkeys(among if among is not None else pb.roles) if r in pb.roles]
    first = _check(pb, user_id, directory, roles, fresh=False)
    if first.held:
        return first
    return _check(pb, user_id, directory, roles, fresh=True)


def _check(pb: Playbook, user_id: str, directory: Directory, roles: list[str], *, fresh: bool) -> RoleCheck:
    held: set[str] = set()
    unknown: dict[str, str] = {}
    for role in roles:
        spec = pb.roles[role]
        if user_id in spec.users:
            held.add(role)
            continue
        for group in spec.groups:
            try:
                if user_id in directory.group_members(group, fresh=fresh):
                    held.add(role)
                    break
            except MembershipUnknown as exc:
                unknown[role] = exc.reason
        if role in held:
            unknown.pop(role, None)
    return RoleCheck(frozenset(held), unknown)


def holders(pb: Playbook, role: str, directory: Directory) -> set[str]:
    """Everyone known to hold `role` (groups that cannot be read now add nobody)."""
    spec = pb.roles.get(role)
    if spec is None:
        return set()
    people = set(spec.users)
    for g in spec.groups:
        try:
            people |= directory.group_members(g)
        except MembershipUnknown:
            continue
    return people
