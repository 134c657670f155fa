"""build_app: the Bolt app with every listener registered, talking to Slack through our own client.

Accepting a click never needs Slack: the app is authorized from settings (no auth.test per request or at
start-up), signatures are checked by slack/http.py before Bolt sees the request, and the reply leaves only
when the listener has recorded what the person did (process_before_response): a crash after the 200 loses
nothing. Slow work goes to the runtime's workers after the reply."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped, warning_token_skipped

from rollback_bot.slack import inbound, listeners
from rollback_bot.slack.clicks import CannotTake
from rollback_bot.slack.runtime import SlackRuntime
from rollback_bot.store.inbound import Replayed

log = logging.getLogger(__name__)


class _BoltTokenWarnings(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment on its own and then warns, at every start, that it is
    unused (we hand it a client and an `authorize`): true, expected, and alarming to operators."""

    SKIP = (warning_client_prioritized_and_token_skipped(), warning_token_skipped())

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.SKIP


def _quiet_bolt_token_warnings() -> None:
    bolt = logging.getLogger("slack_bolt")
    if not any(isinstance(f, _BoltTokenWarnings) for f in bolt.filters):
        bolt.addFilter(_BoltTokenWarnings())


def build_app(rt: SlackRuntime) -> App:
    def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=rt.client.token,
            bot_user_id=rt.identity.user_id,
            bot_id=rt.identity.bot_id,
        )

    _quiet_bolt_token_warnings()
    app = App(
        client=rt.client,  # its base_url is SLACK_API_URL; Bolt has no setting of its own for that
        authorize=authorize,
        token_verification_enabled=False,  # no auth.test at construction: a Slack outage must not stop start-up
        request_verification_enabled=False,  # slack/http.py checks the signature on the raw body, first
        process_before_response=True,
        ignoring_self_events_enabled=False,
        logger=logging.getLogger("slack_bolt"),
    )
    listeners.register(app, rt)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
        """Any listener failure: the person is told it failed and under which id it is logged."""
        if isinstance(error, Replayed):  # the same signed request again: it already did what it does
            log.warning("ignored a replayed Slack request: %s", error)
            return BoltResponse(status=200, body="")
        if isinstance(error, CannotTake):  # Slack shows the clicker the click failed; nothing was recorded
            log.error("cannot take a click: the database is unreachable (%s)", error)
            return BoltResponse(status=503, body="database unreachable")
        ref = uuid.uuid4().hex[:8]
        log.error("listener failed on %s [%s]", body.get("type") or body.get("command"), ref, exc_info=error)
        text = f":warning: Something went wrong; it is logged as `{ref}`. Nothing may have been recorded: try again."
        if body.get("type") == "block_actions":  # a command's answer is the response below; a click's is not
            with contextlib.suppress(inbound.Rejected):  # too malformed to say where to answer
                rt.answer_later(inbound.click(body), text)
        return BoltResponse(
            status=200,
            body=json.dumps({"response_type": "ephemeral", "text": text}),
            headers={"content-type": "application/json"},
        )

    return app
