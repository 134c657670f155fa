"""Who is in which Slack user group, and people's names: Slack lookups behind short-lived caches.

These lookups sit on the path of a click, which Slack wants answered within 3 seconds, so they use a client
with a short timeout and no retries. A group that cannot be read is served from a copy at most `max_stale`
old; past that, its members are unknown (MembershipUnknown), which is not the same as 'nobody'."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from rollback_bot.clock import Clock
from rollback_bot.directory import MembershipUnknown
from rollback_bot.telemetry import SLACK_API_ERRORS

log = logging.getLogger(__name__)
NAMES_TTL = timedelta(hours=1)
LOOKUP_TIMEOUT = 1  # seconds per lookup: a click's whole answer must fit in Slack's 3 seconds


def lookup_client(token: str, base_url: str) -> WebClient:
    """A client for lookups on a click's path: short timeout, no retries (a stale copy or 'try again' is
    better than a click Slack gives up on)."""
    return WebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=LOOKUP_TIMEOUT,
        retry_handlers=[],
    )


class SlackDirectory:
    def __init__(
        self,
        client: WebClient,
        clock: Clock,
        ttl: timedelta = timedelta(seconds=30),
        max_stale: timedelta = timedelta(minutes=10),
        refresh_floor: timedelta = timedelta(seconds=5),
    ) -> None:
        """`ttl`: how long members are used without asking again; `max_stale`: how old a copy may be used
        while Slack cannot answer; `refresh_floor`: the least time between two re-reads of a group forced by
        a refusal (a person clicking again and again must not exhaust Slack's rate limit)."""
        self.client, self.clock = client, clock
        self.ttl, self.max_stale, self.refresh_floor = ttl, max_stale, refresh_floor
        self._groups: dict[str, tuple[datetime, set[str]]] = {}
        self._names: dict[str, tuple[datetime, str]] = {}
        self._lock = threading.Lock()

    def group_members(self, group_id: str, *, fresh: bool = False) -> set[str]:
        now = self.clock.now()
        with self._lock:
            cached = self._groups.get(group_id)
        age = now - cached[0] if cached else None
        if cached and age is not None and age < (self.refresh_floor if fresh else self.ttl):
            return set(cached[1])
        try:
            users = self.client.usergroups_users_list(usergroup=group_id).get("users")
            if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
                raise ValueError("the answer has no list of user IDs")
        except Exception as exc:
            SLACK_API_ERRORS.labels(method="usergroups.users.list").inc()
            why = exc.response.get("error") if isinstance(exc, SlackApiError) else f"{type(exc).__name__}: {exc}"
            reason = f"Slack did not give the members of {group_id} ({str(why)[:120]})"
            if cached and age is not None and age <= self.max_stale:
                log.warning("%s; using the copy from %.0f s ago", reason, age.total_seconds())
                return set(cached[1])
            log.warning("%s; no copy younger than %s", reason, self.max_stale)
            raise MembershipUnknown(reason) from None
        members = set(users)
        with self._lock:
            self._groups[group_id] = (now, members)
        return set(members)

    def display_name(self, user_id: str) -> str:
        now = self.clock.now()
        with self._lock:
            cached = self._names.get(user_id)
        if cached and now - cached[0] < NAMES_TTL:
            return cached[1]
        try:
            user = self.client.users_info(user=user_id).get("user") or {}
        except Exception:
            SLACK_API_ERRORS.labels(method="users.info").inc()
            return cached[1] if cached else user_id
        profile = user.get("profile") or {}
        name = profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name")
        name = str(name or user_id)
        with self._lock:
            self._names[user_id] = (now, name)
        return name
