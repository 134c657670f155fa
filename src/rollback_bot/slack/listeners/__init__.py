"""Slack listeners, grouped by kind; each module has register(app, runtime). Listeners ack at once,
parse, call a flow, and render: nothing else."""

from __future__ import annotations

from slack_bolt import App

from rollback_bot.slack.listeners import actions, commands
from rollback_bot.slack.runtime import SlackRuntime


def register(app: App, rt: SlackRuntime) -> None:
    commands.register(app, rt)
    actions.register(app, rt)
