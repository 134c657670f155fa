"""Buttons on the incident alert (Acknowledge, Approve <action>, Hold / Release hold, Resolve), on a rollout's
message (Advance, Hold, Release hold, Roll back) and on a failed panic run (Acknowledge). The click is written to
the inbox before Bolt answers Slack (process_before_response); what it does, and the clicker's answer, follow
from slack/clicks.py."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App
from sqlalchemy.exc import SQLAlchemyError

from rollback_bot.slack import inbound
from rollback_bot.slack.clicks import CannotTake
from rollback_bot.slack.runtime import SlackRuntime

BUTTONS = re.compile(r"^(ack|hold|release|resolve|panic_ack|approve:[a-z0-9][a-z0-9_-]*)\Z")  # \Z: "$" lets "ack\n" in
ROLLOUT_BUTTONS = re.compile(r"^rollout_(advance|hold|release|rollback)\Z")
log = logging.getLogger(__name__)


def register(app: App, rt: SlackRuntime) -> None:
    def click(ack: Ack, body: dict[str, Any]) -> None:
        try:
            clicked = inbound.click(body)  # checked already over HTTP; Socket Mode delivers unchecked
        except inbound.Rejected as exc:
            log.warning("ignored a malformed click: %s", exc.reason)
            ack()
            return
        assert rt.desk is not None, "build_service gives every runtime its desk"
        try:
            fresh = rt.desk.take(clicked)
        except SQLAlchemyError as exc:  # nothing can be recorded: Slack shows the clicker a failure (503)
            raise CannotTake(type(exc).__name__) from exc
        if not fresh:
            log.warning("ignored a replayed click (its request was taken before)")
        ack()

    app.action(BUTTONS)(click)
    app.action(ROLLOUT_BUTTONS)(click)
