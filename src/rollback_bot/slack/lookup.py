"""Finding the bot's own earlier post, for a post whose answer was lost: Slack may have posted it.

Every post carries message metadata (`marker`); conversations.history (a channel) and conversations.replies
(a thread) return it when asked with include_all_metadata. Only called while a post is in flight, so a
sync where every answer arrived costs no lookup at all.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)
Call = Callable[..., dict[str, Any]]  # SlackSync._call: method name, then its arguments
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")  # Slack's IDs are upper case; channel names are lower case
PAGES = 5  # how far back to look: a lost post is among the newest messages when it is looked for
HISTORY_PAGE, REPLIES_PAGE, LIST_PAGE = 100, 1000, 1000


def marker(event_type: str, **payload: str | int) -> dict[str, Any]:
    """Message metadata that names what a post is (`event_type` plus the keys it is found by)."""
    return {"event_type": event_type, "event_payload": payload}


def matches(message: Mapping[str, Any], event_type: str, payload: Mapping[str, Any]) -> bool:
    meta = message.get("metadata") or {}
    found = meta.get("event_payload") or {}
    return bool(meta.get("event_type") == event_type and all(found.get(k) == v for k, v in payload.items()))


class Lookup:
    """Looks for a marked post in a channel or a thread; resolves channel names to IDs (cached)."""

    def __init__(self, call: Call) -> None:
        self._call = call
        self._ids: dict[str, str] = {}

    def remember(self, channel: str, channel_id: str) -> None:
        """What a post's answer said the channel's ID is: later lookups need no conversations.list."""
        self._ids[_name(channel)] = channel_id

    def channel_id(self, channel: str) -> str | None:
        """The ID of '#name', 'name' or an ID; None when no channel the bot can see has that name."""
        if CHANNEL_ID.match(channel):
            return channel
        name = _name(channel)
        if name not in self._ids:
            for page in self._pages(
                "conversations.list",
                "channels",
                LIST_PAGE,
                20,
                types="public_channel,private_channel",
                exclude_archived=True,
            ):
                for ch in page:
                    self._ids[str(ch.get("name"))] = str(ch.get("id"))
                if name in self._ids:
                    break
        return self._ids.get(name)

    def in_channel(self, channel: str, event_type: str, payload: Mapping[str, Any]) -> tuple[str, str] | None:
        """(channel ID, ts) of the newest top-level message with this marker, if any."""
        try:
            channel_id = self.channel_id(channel)
        except SlackApiError as exc:
            _unless_definite(exc, "conversations.list")
            return None
        if channel_id is None:
            log.warning("no channel %s visible to the bot: its earlier post cannot be there", channel)
            return None
        found = self._find(
            "conversations.history", HISTORY_PAGE, event_type, payload, channel=channel_id, include_all_metadata=True
        )
        return (channel_id, found) if found is not None else None

    def in_thread(self, channel_id: str, thread_ts: str, event_type: str, payload: Mapping[str, Any]) -> str | None:
        """The ts of a reply with this marker in the thread, if any."""
        return self._find(
            "conversations.replies",
            REPLIES_PAGE,
            event_type,
            payload,
            channel=channel_id,
            ts=thread_ts,
            include_all_metadata=True,
        )

    def _find(self, method: str, limit: int, event_type: str, payload: Mapping[str, Any], **kw: object) -> str | None:
        try:
            for page in self._pages(method, "messages", limit, PAGES, **kw):
                for message in page:
                    if matches(message, event_type, payload):
                        return str(message["ts"])
        except SlackApiError as exc:
            _unless_definite(exc, method)
        return None

    def _pages(self, method: str, key: str, limit: int, pages: int, **kw: object) -> Iterator[list[dict[str, Any]]]:
        cursor = ""
        for _ in range(pages):
            resp = self._call(method, limit=limit, **({"cursor": cursor} if cursor else {}), **kw)
            yield list(resp.get(key) or [])
            cursor = str((resp.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return


def _unless_definite(exc: SlackApiError, method: str) -> None:
    """Re-raise while Slack is in trouble (look again later rather than risk a second post); on a definite
    no (missing_scope, not_in_channel, ...) the bot cannot look, and says so: the caller posts again."""
    if exc.response.status_code >= 500 or exc.response.status_code == 429:
        raise exc
    log.warning("cannot look for an earlier post with %s: %s", method, exc.response.get("error"))


def _name(channel: str) -> str:
    return channel.removeprefix("#")
