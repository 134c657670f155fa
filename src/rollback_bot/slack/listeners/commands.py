"""The /rollback slash command."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from rollback_bot.slack.commands import handle
from rollback_bot.slack.runtime import SlackRuntime

log = logging.getLogger(__name__)


def register(app: App, rt: SlackRuntime) -> None:
    @app.command("/rollback")
    def rollback(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()  # within Slack's 3 seconds, always; the work below may take longer
        message = handle(rt.deps, rt.playbooks, command.get("text") or "", command["user_id"])
        payload = message.payload()
        answer = respond(response_type="ephemeral", replace_original=False, **payload)
        if answer.status_code != 200:  # respond() does not raise; fall back to an ephemeral message
            log.warning("response_url answered %s; sending the reply with chat.postEphemeral", answer.status_code)
            client.chat_postEphemeral(channel=command["channel_id"], user=command["user_id"], **payload)
