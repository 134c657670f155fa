"""The playbook: models of the YAML file, its condition language, loading with file:line errors."""

from rollback_bot.playbook.loader import (
    LoadedPlaybook,
    PlaybookError,
    PlaybookInvalid,
    load_playbook,
    parse_playbook,
)
from rollback_bot.playbook.models import ActionSpec, Playbook, SignalSpec, StepSpec, TriggerSpec

__all__ = [
    "ActionSpec",
    "LoadedPlaybook",
    "Playbook",
    "PlaybookError",
    "PlaybookInvalid",
    "SignalSpec",
    "StepSpec",
    "TriggerSpec",
    "load_playbook",
    "parse_playbook",
]
