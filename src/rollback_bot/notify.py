"""Where timeline events go after they are committed (console in drills, Slack in `serve`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from rollback_bot.store.models import Event, Incident

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def publish(self, incident: Incident | None, event: Event) -> None: ...


class NullNotifier:
    def publish(self, incident: Incident | None, event: Event) -> None:
        return None


class RecordingNotifier:
    """Keeps what it was given; for tests."""

    def __init__(self) -> None:
        self.events: list[tuple[Incident | None, Event]] = []

    def publish(self, incident: Incident | None, event: Event) -> None:
        self.events.append((incident, event))

    def kinds(self) -> list[str]:
        return [e.kind for _, e in self.events]


def publish_all(notifier: Notifier, incident: Incident | None, events: Sequence[Event]) -> None:
    """Deliver committed events; a failing notifier is logged, never raised (the events are stored)."""
    for ev in events:
        try:
            notifier.publish(incident, ev)
        except Exception:
            log.exception("notifier failed on event %s (%s); the event is stored", ev.id, ev.kind)
