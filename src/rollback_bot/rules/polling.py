"""Is the bot itself keeping up? Poll groups and when one counts as behind. Pure: no I/O."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.models import Playbook

BEHIND_AFTER = 2  # intervals without a complete poll before a group is 'behind'


@dataclass(frozen=True)
class PollGroup:
    """A playbook's signals with one interval, polled together by one job."""

    playbook: str
    every: timedelta  # as written in the playbook: names the group
    interval: timedelta  # as really polled (a compressed clock has a floor)
    signals: tuple[str, ...]

    @property
    def name(self) -> str:
        return format_duration(self.every)


def poll_groups(pb: Playbook, poll_floor: timedelta = timedelta(0)) -> list[PollGroup]:
    groups: defaultdict[timedelta, list[str]] = defaultdict(list)
    for name, spec in pb.signals.items():
        groups[spec.every].append(name)
    return [PollGroup(pb.name, every, max(every, poll_floor), tuple(names)) for every, names in sorted(groups.items())]


def lag(group: PollGroup, last_finished: datetime | None, watching_since: datetime, now: datetime) -> timedelta:
    """How long since the group last completed a poll (or since watching began, if later)."""
    ref = watching_since if last_finished is None else max(last_finished, watching_since)
    return max(now - ref, timedelta(0))


def is_behind(group: PollGroup, lag: timedelta) -> bool:
    return lag > BEHIND_AFTER * group.interval
