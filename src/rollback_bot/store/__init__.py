"""Persistence: SQLModel tables, the engine, and `audit.record`, the only writer of timeline events."""

from rollback_bot.store.database import Store, database_url
from rollback_bot.store.models import (
    ActionRun,
    Approval,
    Event,
    Incident,
    ReadingRow,
    Reminder,
    SignalHealthRow,
    SlackCursor,
    TriggerStateRow,
)

__all__ = [
    "ActionRun",
    "Approval",
    "Event",
    "Incident",
    "ReadingRow",
    "Reminder",
    "SignalHealthRow",
    "SlackCursor",
    "Store",
    "TriggerStateRow",
    "database_url",
]
