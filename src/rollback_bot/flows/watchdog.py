"""Use case: the bot watches itself. A poll group that has not completed a poll in time raises 'polling
behind' (once per episode, in the incident's thread or the playbook's channel) and 'polling restored' when
it has again; the same status feeds /healthz and /metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rollback_bot.flows.deps import Deps
from rollback_bot.notify import publish_all
from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.rules.polling import PollGroup, is_behind, lag, poll_groups
from rollback_bot.store import audit, watching
from rollback_bot.store.incidents import open_incident
from rollback_bot.store.models import Event, PollStateRow


@dataclass(frozen=True)
class GroupStatus:
    group: PollGroup
    lag: timedelta  # since the last complete poll (or since watching began, if later): decides 'behind'
    behind: bool
    row: PollStateRow | None
    age: timedelta | None = None  # since the last complete poll, whenever it was (None: never)

    @property
    def caught_up(self) -> bool:
        """A recent complete poll: only that ends a 'behind' episode (not a process that just started)."""
        return self.age is not None and not is_behind(self.group, self.age)

    @property
    def unhealthy(self) -> bool:
        return self.behind or (self.row is not None and self.row.behind and not self.caught_up)

    def describe(self) -> str:
        g = self.group
        what = f"{len(g.signals)} signal(s) of {g.playbook} polled every {g.name}"
        row = self.row
        if row is not None and row.started_at and (row.finished_at is None or row.started_at > row.finished_at):
            started = f"{row.started_at:%H:%M:%S}"
            return f"{what}: a poll started at {started} has not finished, no complete poll for {_d(self.lag)}"
        return f"{what}: no complete poll for {_d(self.lag)}"


def _d(delta: timedelta) -> str:
    return format_duration(timedelta(seconds=round(delta.total_seconds()))) if delta >= timedelta(seconds=1) else "0s"


def polling_status(
    deps: Deps, playbooks: Sequence[LoadedPlaybook], watching_since: datetime | None
) -> list[GroupStatus]:
    now = deps.now()
    names = [lp.playbook.name for lp in playbooks]
    with deps.store.session() as s:
        rows = {(r.playbook, r.poll_group): r for r in watching.poll_states(s, playbooks=names)}
    out = []
    for loaded in playbooks:
        for g in poll_groups(loaded.playbook, deps.poll_floor):
            row = rows.get((g.playbook, g.name))
            finished = row.finished_at if row else None
            late = lag(g, finished, watching_since, now)
            out.append(GroupStatus(g, late, is_behind(g, late), row, None if finished is None else now - finished))
    return out


def check_polling(deps: Deps, playbooks: Sequence[LoadedPlaybook], watching_since: datetime | None) -> list[Event]:
    """Record 'polling behind' / 'polling restored' for the groups whose state changed (once, across processes:
    the scheduler's own watchdog, every web process's, and a scheduler starting after a gap all check).
    `watching_since`: when this process began watching (None: measure the real gap, e.g. at start-up)."""
    published: list[Event] = []
    for status in polling_status(deps, playbooks, watching_since):
        g = status.group
        was_behind = status.row is not None and status.row.behind
        if (was_behind and not status.caught_up) or (not was_behind and not status.behind):
            continue
        with deps.store.session() as s:
            if status.row is None:  # never polled: the flag needs a row
                watching.ensure_group(
                    s, playbook=g.playbook, group=g.name, every_s=g.interval.total_seconds(), signals=len(g.signals)
                )
            if not watching.set_behind(s, playbook=g.playbook, group=g.name, behind=not was_behind):
                s.commit()
                continue
            incident = open_incident(s, playbook=g.playbook)
            if not was_behind:
                kind, summary = "polling.behind", f"polling behind: {status.describe()}"
            else:
                took = status.row.duration_s if status.row else 0.0
                kind = "polling.restored"
                summary = (
                    f"polling restored: {len(g.signals)} signal(s) of {g.playbook} polled every {g.name}, "
                    f"last poll took {took:.1f}s"
                )
            ev = audit.record(
                s,
                playbook=g.playbook,
                incident_id=incident.id if incident else None,
                kind=kind,
                at=deps.now(),
                summary=summary,
                details={
                    "group": g.name,
                    "signals": len(g.signals),
                    "seconds_since_complete_poll": round(status.lag.total_seconds(), 3),
                    "interval_seconds": g.interval.total_seconds(),
                },
            )
            s.commit()
        publish_all(deps.notifier, incident, [ev])
        published.append(ev)
    return published
