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
FAILURE_PAUSE = timedelta(seconds=10)  # after a failed lookup, Slack is asked again only after this
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
        # after a failed lookup, Slack is not asked again for a while: clicks use what is known at once instead
        # of each waiting out a timeout while Slack hangs
        self._failed: dict[str, tuple[datetime, str]] = {}
        self._slack_down: tuple[datetime, str] | None = None  # no answer at all (timeout, refused): all wait
        self._lock = threading.Lock()

    def group_members(self, group_id: str, *, fresh: bool = False) -> set[str]:
        now = self.clock.now()
        with self._lock:
            cached = self._groups.get(group_id)
        age = now - cached[0] if cached else None
        if cached and age is not None and age < (self.refresh_floor if fresh else self.ttl):
            return set(cached[1])
        with self._lock:
            failed = self._failed.get(group_id) or self._slack_down
        if failed and now - failed[0] < FAILURE_PAUSE:
            return self._fallback(group_id, cached, age, failed[1])
        try:
            users = self.client.usergroups_users_list(usergroup=group_id).get("users")
            if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
                raise ValueError("the answer has no list of user IDs")
        except Exception as exc:
            SLACK_API_ERRORS.labels(method="usergroups.users.list").inc()
            why = exc.response.get("error") if isinstance(exc, SlackApiError) else f"{type(exc).__name__}: {exc}"
            reason = f"Slack did not give the members of {group_id} ({str(why)[:120]})"
            with self._lock:
                self._failed[group_id] = (now, reason)
                if not isinstance(exc, SlackApiError):  # no answer at all: every lookup would wait the same
                    self._slack_down = (now, reason)
            log.warning("%s", reason)
            return self._fallback(group_id, cached, age, reason)
        members = set(users)
        with self._lock:
            self._groups[group_id] = (now, members)
            self._failed.pop(group_id, None)
            self._slack_down = None
        return set(members)

    def _fallback(
        self, group_id: str, cached: tuple[datetime, set[str]] | None, age: timedelta | None, reason: str
    ) -> set[str]:
        """The last known members while they are recent enough; past that, the members are unknown."""
        if cached and age is not None and age <= self.max_stale:
            return set(cached[1])
        raise MembershipUnknown(reason)

    def display_name(self, user_id: str) -> str:
        now = self.clock.now()
        with self._lock:
            cached = self._names.get(user_id)
        if cached and now - cached[0] < NAMES_TTL:
            return cached[1]
        with self._lock:
            down = self._slack_down
        if down and now - down[0] < FAILURE_PAUSE:
            return cached[1] if cached else user_id
        try:
            user = self.client.users_info(user=user_id).get("user") or {}
        except Exception as exc:
            SLACK_API_ERRORS.labels(method="users.info").inc()
            known = cached[1] if cached else user_id
            with self._lock:  # asked again after FAILURE_PAUSE, not on every click while Slack hangs
                self._names[user_id] = (now - NAMES_TTL + FAILURE_PAUSE, known)
                if not isinstance(exc, SlackApiError):
                    self._slack_down = (now, f"Slack did not answer users.info ({type(exc).__name__})")
            return known
        profile = user.get("profile") or {}
        found = profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name")
        name = str(found or user_id)
        with self._lock:
            self._names[user_id] = (now, name)
        return name
