"""build_app: the Bolt app with every listener registered, talking to Slack through our own client."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltResponse

from rollback_bot.slack import listeners
from rollback_bot.slack.runtime import SlackRuntime

log = logging.getLogger(__name__)


def build_app(rt: SlackRuntime, signing_secret: str | None) -> App:
    app = App(
        client=rt.client,  # its base_url is SLACK_API_URL; Bolt has no setting of its own for that
        signing_secret=signing_secret,
        token_verification_enabled=False,  # no auth.test at construction: a Slack outage must not stop start-up
        request_verification_enabled=signing_secret is not None,  # Socket Mode has no signatures
        ignoring_self_events_enabled=False,
    )
    listeners.register(app, rt)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
        log.exception("listener failed on %s", body.get("type") or body.get("command"), exc_info=error)
        return BoltResponse(status=200, body="")

    return app
