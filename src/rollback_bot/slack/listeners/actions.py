"""Buttons on the incident alert: Acknowledge, Approve <action>, Hold / Release hold, Resolve."""

from __future__ import annotations

import json
import re
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from rollback_bot import flows
from rollback_bot.flows.deps import Outcome
from rollback_bot.slack.limits import esc
from rollback_bot.slack.runtime import SlackRuntime

BUTTONS = re.compile(r"^(ack|hold|release|resolve|approve:[a-z0-9][a-z0-9_-]*)$")


def register(app: App, rt: SlackRuntime) -> None:
    @app.action(BUTTONS)
    def click(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        try:
            incident_id = int(json.loads(action.get("value") or "{}")["i"])
        except (ValueError, KeyError, TypeError):
            outcome = Outcome(False, "this button carries no incident; use /rollback status")
        else:
            outcome = _dispatch(rt, action["action_id"], incident_id, user)
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        thread = (body.get("container") or {}).get("message_ts")
        mark = ":white_check_mark:" if outcome.ok else ":no_entry:"
        text = f"{mark} {esc(outcome.message[:1].upper() + outcome.message[1:])}"
        if channel:
            client.chat_postEphemeral(channel=str(channel), user=user, text=text, thread_ts=thread)
        if outcome.incident_id is not None:
            rt.sync.kick(outcome.incident_id)


def _dispatch(rt: SlackRuntime, action_id: str, incident_id: int, user: str) -> Outcome:
    deps = rt.deps
    if action_id.startswith("approve:"):
        return flows.approve(deps, incident_id, action_id.removeprefix("approve:"), user)
    verbs = {"ack": flows.acknowledge, "hold": flows.hold, "release": flows.release, "resolve": flows.resolve}
    return verbs[action_id](deps, incident_id, user)
