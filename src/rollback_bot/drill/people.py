"""Simulated people for a drill, and the script they follow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from rollback_bot.directory import StaticDirectory
from rollback_bot.playbook.models import Playbook

INTRUDER = "U0INTRUDER"
_FIRST_NAMES = ["Ana", "Bo", "Chen", "Dara", "Eli", "Fatou", "Gus", "Hana", "Ivo", "Jun", "Kemi", "Lars"]


def drill_directory(pb: Playbook) -> tuple[StaticDirectory, dict[str, list[str]]]:
    """People for every role: the playbook's user IDs, plus two made-up members per user group."""
    names: dict[str, str] = {INTRUDER: "Ivan (no role)"}
    groups: dict[str, set[str]] = {}
    holders: dict[str, list[str]] = {}
    i = 0
    for role, spec in pb.roles.items():
        people = list(spec.users)
        for group in spec.groups:
            members = groups.setdefault(group, set())
            if not members:
                for k in (1, 2):
                    uid = f"U0{group.upper()}{k}"
                    members.add(uid)
            people += sorted(members)
        for uid in people:
            if uid not in names:
                names[uid] = f"{_FIRST_NAMES[i % len(_FIRST_NAMES)]} ({role.replace('_', ' ')})"
                i += 1
        holders[role] = people
    return StaticDirectory(groups, names), holders


@dataclass
class Cue:
    """At `delay` after the start of ladder step `step` (-1: the incident's opening), `user` does `verb`."""

    step: int
    delay: timedelta
    user: str
    verb: str  # ack | approve | resolve
    action: str | None = None
    expect_ok: bool = True
    done: bool = False

    def describe(self, names: dict[str, str]) -> str:
        who = names.get(self.user, self.user)
        return f"{who} {self.verb}s" + (f" '{self.action}'" if self.action else "")


def script(pb: Playbook, holders: dict[str, list[str]]) -> list[Cue]:
    """The commander acknowledges; each action is approved by distinct people holding its roles; an
    unauthorized user tries the first staged action and is refused; one approver clicks twice."""
    ack_role = next(r for r in pb.acknowledge.requires if holders.get(r))
    cues = [Cue(-1, timedelta(minutes=5), holders[ack_role][0], "ack")]
    first_staged = next((a.id for s in pb.ladder for a in s.actions if a.stages), None)
    for index, step in enumerate(pb.ladder):
        delay = timedelta(minutes=10 if index == 0 else 3)  # step 1 starts with the acknowledgement
        for action in step.actions:
            if action.id == first_staged:
                cues.append(Cue(index, delay, INTRUDER, "approve", action.id, expect_ok=False))
                delay += timedelta(minutes=2)
            used: set[str] = set()
            for role in action.requires:
                person = next((p for p in holders.get(role, []) if p not in used), None)
                if person is None:
                    continue
                used.add(person)
                cues.append(Cue(index, delay, person, "approve", action.id))
                if action.id == first_staged and len(used) == 1:
                    cues.append(Cue(index, delay + timedelta(minutes=1), person, "approve", action.id, expect_ok=False))
                delay += timedelta(minutes=4)
    resolver = next(p for r in pb.resolve.requires for p in holders.get(r, []))
    cues.append(Cue(len(pb.ladder), timedelta(minutes=1), resolver, "resolve"))
    return cues
