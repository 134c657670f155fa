"""What Slack listeners need: the engine's dependencies, the playbooks, the client, the sync."""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk import WebClient

from rollback_bot.flows.deps import Deps
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.slack.sync import SlackSync


@dataclass
class SlackRuntime:
    deps: Deps
    playbooks: dict[str, LoadedPlaybook]
    client: WebClient
    sync: SlackSync
