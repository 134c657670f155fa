"""Who is in which Slack user group, and people's names: Slack lookups behind short-lived caches."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from rollback_bot.clock import Clock
from rollback_bot.telemetry import SLACK_API_ERRORS

log = logging.getLogger(__name__)


class SlackDirectory:
    """`usergroups.users.list` is rate-limited (tier 2), so members are cached for `ttl`. When Slack
    cannot answer, the last known members are used; with none known, nobody holds the group's role
    (refusing is safer than letting anyone approve)."""

    def __init__(self, client: WebClient, clock: Clock, ttl: timedelta = timedelta(minutes=2)) -> None:
        self.client, self.clock, self.ttl = client, clock, ttl
        self._groups: dict[str, tuple[datetime, set[str]]] = {}
        self._names: dict[str, tuple[datetime, str]] = {}
        self._lock = threading.Lock()

    def group_members(self, group_id: str) -> set[str]:
        now = self.clock.now()
        with self._lock:
            cached = self._groups.get(group_id)
        if cached and now - cached[0] < self.ttl:
            return set(cached[1])
        try:
            users = set(self.client.usergroups_users_list(usergroup=group_id).get("users") or [])
        except SlackApiError as exc:
            SLACK_API_ERRORS.labels(method="usergroups.users.list").inc()
            log.warning(
                "usergroups.users.list %s failed (%s); using %s",
                group_id,
                exc.response.get("error"),
                "the last known members" if cached else "no members",
            )
            return set(cached[1]) if cached else set()
        except Exception:
            SLACK_API_ERRORS.labels(method="usergroups.users.list").inc()
            log.exception("usergroups.users.list %s failed", group_id)
            return set(cached[1]) if cached else set()
        with self._lock:
            self._groups[group_id] = (now, users)
        return set(users)

    def display_name(self, user_id: str) -> str:
        now = self.clock.now()
        with self._lock:
            cached = self._names.get(user_id)
        if cached and now - cached[0] < self.ttl * 30:
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
