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
        if not spec.compared:  # read per version by the rollout's own job
            groups[spec.every].append(name)
    return [PollGroup(pb.name, every, max(every, poll_floor), tuple(names)) for every, names in sorted(groups.items())]


def lag(group: PollGroup, last_finished: datetime | None, watching_since: datetime | None, now: datetime) -> timedelta:
    """How long since the group last completed a poll, counted from when watching began if that is later
    (a process that just started has not missed anything yet). With no start given: the real gap."""
    if last_finished is None and watching_since is None:
        return timedelta(0)  # a group never polled, on a first start: nothing missed yet
    refs = [t for t in (last_finished, watching_since) if t is not None]
    return max(now - max(refs), timedelta(0))


def is_behind(group: PollGroup, lag: timedelta) -> bool:
    return lag > BEHIND_AFTER * group.interval
