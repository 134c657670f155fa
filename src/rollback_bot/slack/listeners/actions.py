"""Buttons on the incident alert (Acknowledge, Approve <action>, Hold / Release hold, Resolve) and on a rollout's
message (Advance, Hold, Release hold, Roll back). The click is recorded before Bolt answers Slack
(process_before_response); the clicker's answer follows as an ephemeral."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App

from rollback_bot import flows
from rollback_bot.flows import rollout as flows_rollout
from rollback_bot.flows.deps import Outcome
from rollback_bot.slack import inbound
from rollback_bot.slack.limits import esc
from rollback_bot.slack.runtime import SlackRuntime

BUTTONS = re.compile(r"^(ack|hold|release|resolve|approve:[a-z0-9][a-z0-9_-]*)\Z")  # \Z: "$" lets "ack\n" in
ROLLOUT_BUTTONS = re.compile(r"^rollout_(advance|hold|release|rollback)\Z")
log = logging.getLogger(__name__)


def register(app: App, rt: SlackRuntime) -> None:
    def listener(dispatch: Callable[[SlackRuntime, inbound.Click], Outcome]) -> Callable[[Ack, dict[str, Any]], None]:
        def click(ack: Ack, body: dict[str, Any]) -> None:
            try:
                clicked = inbound.click(body)  # checked already over HTTP; Socket Mode delivers unchecked
            except inbound.Rejected as exc:
                log.warning("ignored a malformed click: %s", exc.reason)
                ack()
                return
            outcome = dispatch(rt, clicked)
            ack()
            mark = ":white_check_mark:" if outcome.ok else ":no_entry:"
            rt.answer_later(clicked, f"{mark} {esc(outcome.message[:1].upper() + outcome.message[1:])}")

        return click

    app.action(BUTTONS)(listener(_dispatch))
    app.action(ROLLOUT_BUTTONS)(listener(_dispatch_rollout))


def _dispatch_rollout(rt: SlackRuntime, clicked: inbound.Click) -> Outcome:
    try:
        carried = json.loads(clicked.action.value or "{}")
        rollout_id, stage = carried["r"], carried["s"]
    except (ValueError, KeyError, TypeError, RecursionError):
        rollout_id = stage = None
    if type(rollout_id) is not int or type(stage) is not int:  # what our buttons carry
        return Outcome(False, "this button carries no rollout; use /rollback status")
    verb = clicked.action.action_id.removeprefix("rollout_")
    return flows_rollout.act(rt.deps, rt.playbooks, rollout_id, verb, clicked.user.id, stage=stage)


def _dispatch(rt: SlackRuntime, clicked: inbound.Click) -> Outcome:
    try:
        incident_id = json.loads(clicked.action.value or "{}")["i"]
    except (ValueError, KeyError, TypeError, RecursionError):
        incident_id = None
    if type(incident_id) is not int:  # what our buttons carry; not a bool, a float or a string
        return Outcome(False, "this button carries no incident; use /rollback status")
    if not 0 < incident_id < 2**31:
        return Outcome(False, f"there is no incident #{incident_id}")
    deps, user, action_id = rt.deps, clicked.user.id, clicked.action.action_id
    if action_id.startswith("approve:"):
        return flows.approve(deps, incident_id, action_id.removeprefix("approve:"), user)
    verbs = {"ack": flows.acknowledge, "hold": flows.hold, "release": flows.release, "resolve": flows.resolve}
    return verbs[action_id](deps, incident_id, user)
