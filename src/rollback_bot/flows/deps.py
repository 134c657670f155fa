"""What every use case is given: the store, the clock, the HTTP session, the directory, the notifier."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import requests

from rollback_bot.clock import Clock
from rollback_bot.directory import Directory
from rollback_bot.metrics.fetch import DEFAULT_MAX_BYTES
from rollback_bot.metrics.reader import Reader
from rollback_bot.notify import Notifier, NullNotifier
from rollback_bot.playbook.loader import LoadedPlaybook, parse_playbook
from rollback_bot.rules.readings import Reading
from rollback_bot.store.database import Store
from rollback_bot.store.models import Incident
from rollback_bot.worker import inline


@dataclass
class Deps:
    store: Store
    clock: Clock
    http: requests.Session
    directory: Directory
    notifier: Notifier = field(default_factory=NullNotifier)
    min_real_interval: float = 0.0  # the scheduler never polls faster than this (seconds of real time)
    webhook_backoff: float = 0.5  # seconds between webhook retries (doubles each time)
    sleep: Callable[[float], None] = time.sleep  # waits against real endpoints (webhook retry backoff)
    locks: defaultdict[str, threading.RLock] = field(default_factory=lambda: defaultdict(threading.RLock))
    # what this process read last, per playbook and signal: evaluation uses it instead of re-querying
    polled: defaultdict[str, dict[str, Reading]] = field(default_factory=lambda: defaultdict(dict))
    max_response_bytes: int = DEFAULT_MAX_BYTES  # a metric answer larger than this is a failed read
    # where work goes that nobody should wait for (an action's webhook after the approval that completes it):
    # at once in the caller's thread by default (CLI, drills), a worker pool in the service
    background: Callable[[Callable[[], object]], object] = inline
    reader: Reader = field(init=False)  # reads metric sources concurrently over `http`, each within its deadline
    _snapshots: dict[str, LoadedPlaybook] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reader = Reader(self.http, max_bytes=self.max_response_bytes)

    def now(self) -> datetime:
        return self.clock.now()

    @property
    def poll_floor(self) -> timedelta:
        """The shortest interval, in clock time, at which the scheduler really polls."""
        return timedelta(seconds=self.min_real_interval * self.clock.speed)

    def lock(self, playbook: str) -> threading.RLock:
        """Serialises evaluation and ladder work per playbook inside this process."""
        return self.locks[playbook]

    def snapshot(self, incident: Incident) -> LoadedPlaybook:
        """The playbook exactly as it was when the incident opened (the file may have changed since)."""
        key = incident.playbook_version
        if key not in self._snapshots:
            self._snapshots[key] = parse_playbook(incident.playbook_text, incident.playbook_path)
        return self._snapshots[key]


@dataclass(frozen=True)
class Outcome:
    """What a person's request did, in words a Slack reply or the CLI can show."""

    ok: bool
    message: str
    incident_id: int | None = None
    complete: bool = False  # an approval that completed its action's approvals (the action starts)
