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
        reply = handle(rt.deps, rt.playbooks, command.get("text") or "", command["user_id"], command["channel_id"])
        payload = reply.message.payload()
        answer = respond(response_type="ephemeral", replace_original=False, **payload)
        if answer.status_code != 200:  # respond() does not raise; fall back to an ephemeral message
            log.warning("response_url answered %s; sending the reply with chat.postEphemeral", answer.status_code)
            client.chat_postEphemeral(channel=command["channel_id"], user=command["user_id"], **payload)
        if reply.upload is not None:
            up = reply.upload
            try:
                client.files_upload_v2(
                    channel=up.channel,
                    thread_ts=up.thread_ts,
                    title=up.title,
                    initial_comment=up.comment,
                    file_uploads=[{"filename": name, "content": data, "title": name} for name, data in up.files],
                )
            except Exception as exc:  # the reply already went out; say what failed, never drop it silently
                log.warning("files_upload_v2 failed: %s", exc)
                client.chat_postEphemeral(
                    channel=command["channel_id"],
                    user=command["user_id"],
                    text=f":no_entry: Could not upload the timeline file: {exc}",
                )
