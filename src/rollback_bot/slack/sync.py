"""Keeps Slack in step with the timeline: one parent message per incident (posted once, then chat.update),
each event as a thread reply, and playbook-level events (no incident) in the playbook's channel.

The timeline is the outbox: a cursor per incident says how far the thread got, so a Slack outage loses
nothing; the next sync (after any event, and every minute) posts what is missing. A lease on the incident
row keeps two processes from posting the same event.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import col, select, update

from rollback_bot.flows.deps import Deps
from rollback_bot.flows.views import incident_view
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.slack.blocks import alert, thread_event
from rollback_bot.slack.limits import Message
from rollback_bot.store import slack_cursors
from rollback_bot.store.models import Event, Incident, SlackCursor
from rollback_bot.telemetry import SLACK_API_ERRORS

log = logging.getLogger(__name__)
NOT_IN_THREAD = {"incident.opened"}  # the parent message is that event
LEASE = timedelta(seconds=60)


def _fingerprint(message: Message) -> str:
    """A hash of what the parent shows, minus its 'updated at' footer, to skip needless chat.update."""
    payload = message.payload()
    payload["blocks"] = payload["blocks"][:-1]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class SlackSync:
    def __init__(
        self, deps: Deps, client: WebClient, playbooks: Mapping[str, LoadedPlaybook], background: bool = True
    ) -> None:
        self.deps, self.client, self.playbooks = deps, client, playbooks
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slack-sync") if background else None
        self._queued: set[int | str] = set()
        self._lock = threading.Lock()
        with deps.store.session() as s:  # history from before the first start is not replayed; all else is posted
            for name in playbooks:
                slack_cursors.ensure(s, playbook=name)
            s.commit()

    # --- Notifier ---------------------------------------------------------------------------------
    def publish(self, incident: Incident | None, event: Event) -> None:
        key: int | str = incident.id if incident is not None and incident.id is not None else event.playbook
        self.kick(key)

    def kick(self, key: int | str) -> None:
        """Sync an incident (int) or a playbook's channel (str) soon, in the background."""
        if self._executor is None:
            self._run(key)
            return
        with self._lock:
            if key in self._queued:
                return
            self._queued.add(key)
        self._executor.submit(self._run_queued, key)

    def _run_queued(self, key: int | str) -> None:
        with self._lock:
            self._queued.discard(key)
        self._run(key)

    def _run(self, key: int | str) -> None:
        try:
            if isinstance(key, int):
                self.sync_incident(key)
            else:
                self.sync_playbook(key)
        except SlackApiError as exc:  # Slack said no (down, rate limited, ...): the next sync retries
            log.warning("slack sync of %s failed: %s; will retry", key, exc.response.get("error"))
        except OSError as exc:  # unreachable
            log.warning("slack sync of %s failed: %s; will retry", key, exc)
        except Exception:  # a bug: say where, but never let it escape into the engine
            log.exception("slack sync of %s failed; will retry", key)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for queued syncs (tests, shutdown)."""
        if self._executor is not None:
            self._executor.submit(lambda: None).result(timeout=timeout)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    # --- the periodic catch-up ------------------------------------------------------------------------
    def sync_all(self) -> None:
        since = self.deps.now() - timedelta(days=1)
        with self.deps.store.session() as s:
            ids = [
                i.id
                for i in s.exec(select(Incident).order_by(col(Incident.id)))
                if i.id is not None and (i.status == "open" or i.slack_ts is None or (i.resolved_at or since) > since)
            ]
        for incident_id in ids:
            self._run(incident_id)
        for name in self.playbooks:
            self._run(name)

    # --- one incident ---------------------------------------------------------------------------------
    def sync_incident(self, incident_id: int) -> None:
        if not self._take_lease(incident_id):
            return
        try:
            self._post_parent(incident_id)
            self._post_thread(incident_id)
            self._update_parent(incident_id)
        finally:
            with self.deps.store.session() as s:
                s.exec(update(Incident).where(col(Incident.id) == incident_id).values(slack_lease_until=None))
                s.commit()

    def _take_lease(self, incident_id: int) -> bool:
        now = self.deps.now()
        with self.deps.store.session() as s:
            taken = s.exec(
                update(Incident)
                .where(
                    col(Incident.id) == incident_id,
                    col(Incident.slack_lease_until).is_(None) | (col(Incident.slack_lease_until) < now),
                )
                .values(slack_lease_until=now + LEASE)
            )
            s.commit()
            return taken.rowcount == 1

    def _call(self, method: str, **kwargs: object) -> dict[str, object]:
        try:
            return dict(getattr(self.client, method.replace(".", "_"))(**kwargs).data)
        except Exception:
            SLACK_API_ERRORS.labels(method=method).inc()
            raise

    def _post_parent(self, incident_id: int) -> None:
        view = incident_view(self.deps, incident_id)
        if view is None or view.incident.slack_ts is not None:
            return
        message = alert(view)
        resp = self._call("chat.postMessage", channel=view.incident.channel, **message.payload())
        with self.deps.store.session() as s:
            incident = s.get(Incident, incident_id)
            assert incident is not None
            incident.slack_channel, incident.slack_ts = str(resp["channel"]), str(resp["ts"])
            incident.slack_rendered = _fingerprint(message)
            s.add(incident)
            s.commit()

    def _post_thread(self, incident_id: int) -> None:
        with self.deps.store.session() as s:
            incident = s.get(Incident, incident_id)
            assert incident is not None
            events = list(
                s.exec(
                    select(Event)
                    .where(Event.incident_id == incident_id, col(Event.id) > incident.slack_cursor)
                    .order_by(col(Event.id))
                )
            )
        for ev in events:
            if ev.kind not in NOT_IN_THREAD:
                payload = thread_event(ev).payload()
                self._call("chat.postMessage", channel=incident.slack_channel, thread_ts=incident.slack_ts, **payload)
            with self.deps.store.session() as s:  # advance the cursor event by event: a failure resumes here
                s.exec(update(Incident).where(col(Incident.id) == incident_id).values(slack_cursor=ev.id))
                s.commit()

    def _update_parent(self, incident_id: int) -> None:
        view = incident_view(self.deps, incident_id)
        if view is None or view.incident.slack_ts is None:
            return
        message = alert(view)
        fingerprint = _fingerprint(message)
        if fingerprint == view.incident.slack_rendered:
            return
        self._call("chat.update", channel=view.incident.slack_channel, ts=view.incident.slack_ts, **message.payload())
        with self.deps.store.session() as s:
            s.exec(update(Incident).where(col(Incident.id) == incident_id).values(slack_rendered=fingerprint))
            s.commit()

    # --- playbook-level events (no incident) ----------------------------------------------------------
    def sync_playbook(self, name: str) -> None:
        loaded = self.playbooks.get(name)
        if loaded is None:
            return
        with self.deps.store.session() as s:
            cursor = s.get(SlackCursor, name)
            if cursor is None:
                return
            events = list(
                s.exec(
                    select(Event)
                    .where(
                        Event.playbook == name, col(Event.incident_id).is_(None), col(Event.id) > cursor.last_event_id
                    )
                    .order_by(col(Event.id))
                )
            )
        for ev in events:
            self._call("chat.postMessage", channel=loaded.playbook.channel, **thread_event(ev).payload())
            with self.deps.store.session() as s:
                s.exec(update(SlackCursor).where(col(SlackCursor.playbook) == name).values(last_event_id=ev.id))
                s.commit()
