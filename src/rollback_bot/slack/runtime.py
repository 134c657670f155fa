"""What Slack listeners need: the engine's dependencies, the playbooks, the client, the sync, and a worker
for what happens after the reply (ephemeral answers to clicks, uploads)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from rollback_bot.flows.deps import Deps
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.slack import inbound
from rollback_bot.slack.sync import SlackSync
from rollback_bot.worker import inline

if TYPE_CHECKING:
    from rollback_bot.slack.clicks import ClickDesk

log = logging.getLogger(__name__)


@dataclass
class BotIdentity:
    """Who the bot is in Slack: from settings, or learned from auth.test once Slack answers (never needed to
    accept a request)."""

    user_id: str | None = None
    bot_id: str | None = None


@dataclass
class SlackRuntime:
    deps: Deps
    playbooks: dict[str, LoadedPlaybook]
    client: WebClient
    sync: SlackSync
    identity: BotIdentity = field(default_factory=BotIdentity)
    replies: Callable[[Callable[[], object]], object] = inline
    desk: ClickDesk | None = None  # where clicks are taken and worked off (slack/clicks.py)

    def answer_later(self, clicked: inbound.Click, text: str) -> None:
        """An ephemeral answer to whoever clicked, after the acknowledgement (a click's answer cannot ride on
        the HTTP response, as a command's does)."""
        user, channel, thread, url = clicked.user.id, clicked.channel_id, clicked.message_ts, clicked.response_url
        self.replies(lambda: self.tell(user, channel, text, thread, url))

    def tell(self, user: str, channel: object, text: str, thread: object = None, response_url: object = None) -> None:
        """chat.postEphemeral, or the request's response_url when that fails (e.g. the bot is not in the
        channel); a reply that cannot be delivered is logged, the action it reports is already recorded."""
        if isinstance(channel, str) and channel:
            try:
                kw: dict[str, Any] = {"thread_ts": thread} if isinstance(thread, str) and thread else {}
                self.client.chat_postEphemeral(channel=channel, user=user, text=text, **kw)
                return
            except Exception as exc:
                log.warning("chat.postEphemeral to %s failed (%s); trying the response_url", user, exc)
        if isinstance(response_url, str) and response_url.startswith("http"):
            try:
                answer = WebhookClient(response_url, timeout=5).send(
                    text=text, response_type="ephemeral", replace_original=False
                )
                if answer.status_code == 200:
                    return
                log.warning("response_url answered %s", answer.status_code)
            except Exception as exc:
                log.warning("response_url failed: %s", exc)
        log.warning("could not tell %s: %s", user, text)
