"""Keeps Slack in step with the timeline: one parent message per incident (posted once, then chat.update),
each event as a thread reply, and playbook-level events (no incident) in the playbook's channel.

The timeline is the outbox: a cursor per incident (and per playbook channel) says how far Slack got, so a
Slack outage loses nothing; the next sync (after any event, and every minute) posts what is missing. A
lease keeps two processes from posting the same event.

Exactly one message per event, also when Slack's answer is lost: each post is recorded as in flight
before Slack is called and carries a marker (message metadata); the cursor advances, and the in-flight
mark clears, in one statement once Slack confirms. A post still in flight at the next sync (answer lost,
process killed) is looked for in Slack before it is sent again (slack/lookup.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from datetime import timedelta
from functools import partial
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from rollback_bot.flows.deps import Deps
from rollback_bot.flows.views import build_rollout_view, build_view
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.slack.blocks import alert, thread_event
from rollback_bot.slack.client import never_reached_slack
from rollback_bot.slack.lookup import Lookup, marker
from rollback_bot.slack.rollout_message import rollout_message
from rollback_bot.store import leader
from rollback_bot.store import slack_cursors as outbox
from rollback_bot.store.audit import DENIED, UNPOSTED
from rollback_bot.store.models import Event, Incident, Rollout
from rollback_bot.telemetry import SLACK_API_ERRORS, SLACK_SYNCS
from rollback_bot.worker import background_thread

log = logging.getLogger(__name__)
NOT_IN_THREAD = {"incident.opened"} | UNPOSTED  # the parent message is that event; refusals of reads stay quiet
QUIET_REPEATS = timedelta(minutes=10)  # the same refusal of the same person is posted once per this
LEASE = timedelta(seconds=60)  # a sync's lease; the next leading scheduler takes an earlier leader's over at once
AGAIN = 3  # passes a sync makes while events keep arriving (the rest wait for the next sync)
PARENT = 0  # Incident.slack_pending while the parent message is in flight (event ids start at 1)
EVENT_POST = "rollback_bot_event"  # metadata event_type of a thread reply or a channel event
PARENT_POST = "rollback_bot_incident"  # ... and of an incident's parent message
ROLLOUT_POST = "rollback_bot_rollout"  # ... and of a rollout's message


def _fingerprint(payload: dict[str, Any]) -> str:
    """A hash of what the parent shows, minus its 'updated at' footer, to skip needless chat.update."""
    shown = {**payload, "blocks": payload["blocks"][:-1]}
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:16]


# the token a sync's lease was taken under, while it syncs (None: not by a leading scheduler)
_holding: ContextVar[int | None] = ContextVar("slack_sync_lease_token", default=None)


def _refused(exc: Exception) -> bool:
    """Slack did not post: it answered ok=false or 429/4xx, or was never reached. A 5xx or no answer at
    all (connection dropped, timeout): it may have."""
    return (isinstance(exc, SlackApiError) and exc.response.status_code < 500) or never_reached_slack(exc)


def _event_marker(ev: Event) -> dict[str, Any]:
    """What finds this event's post again. `at` tells it from an equal id of an earlier database."""
    assert ev.id is not None
    keys: dict[str, str | int] = {"playbook": ev.playbook, "event_id": ev.id, "at": ev.at.isoformat()}
    if ev.incident_id is not None:
        keys["incident_id"] = ev.incident_id
    return marker(EVENT_POST, **keys)


def _parent_marker(incident: Incident) -> dict[str, Any]:
    assert incident.id is not None
    return marker(
        PARENT_POST, playbook=incident.playbook, incident_id=incident.id, opened_at=incident.opened_at.isoformat()
    )


class SlackSync:
    def __init__(
        self, deps: Deps, client: WebClient, playbooks: Mapping[str, LoadedPlaybook], background: bool = True
    ) -> None:
        self.deps, self.client, self.playbooks = deps, client, playbooks
        self.lookup = Lookup(self._call)
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="slack-sync", initializer=background_thread)
            if background
            else None
        )
        self._queued: set[int | str] = set()
        self._lock = threading.Lock()
        # in a process running the scheduler: the token it leads under, or None while it stands by
        self.leading: Callable[[], int | None] | None = None
        with deps.store.session() as s:  # history from before the first start is not replayed; all else is posted
            for name in playbooks:
                outbox.ensure(s, playbook=name)
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
        except leader.Fenced:  # this process no longer leads: the scheduler job stops here
            raise
        except SlackApiError as exc:  # Slack said no (down, rate limited, ...): the next sync retries
            log.warning("slack sync of %s failed: %s; will retry", key, exc.response.get("error"))
        except OSError as exc:  # unreachable, or the answer was lost: the next sync looks before posting
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
        with self.deps.store.session() as s:
            ids = outbox.to_sync(s, since=self.deps.now() - timedelta(days=1))
        for incident_id in ids:
            self._run(incident_id)
        for name in self.playbooks:
            self._run(name)

    def _token(self) -> int | None:
        """The token a sync acts under: the scheduler job's, or this process's while it leads; None elsewhere
        (a web process, a standby), whose lease only runs out."""
        token = leader.acting_token()
        if token is None and self.leading is not None:
            token = self.leading()
        return token

    @contextmanager
    def _leased(self, token: int | None) -> Iterator[None]:
        mark = _holding.set(token)
        try:
            yield
        finally:
            _holding.reset(mark)

    def _call(self, method: str, **kwargs: object) -> dict[str, Any]:
        held = _holding.get()
        if held is not None and self.leading is not None and self.leading() != held:
            # a leader that stopped leading (frozen, cut off) while it synced calls Slack no more: the next leader
            # took its lease over, and looks in Slack for the post it left in flight
            raise leader.Fenced(f"no longer leading (synced under token {held})")
        try:
            return dict(getattr(self.client, method.replace(".", "_"))(**kwargs).data)
        except Exception:
            SLACK_API_ERRORS.labels(method=method).inc()
            raise

    def _quiet(self, s: Session, ev: Event) -> bool:
        """Kept in the timeline, not posted (in a thread or the channel): the parent itself, reads refused,
        repeated clicks, a refusal of someone refused the same way shortly before (no spamming), and Alertmanager's
        alerts starting or stopping outside an incident (Alertmanager tells its own receivers; an incident they
        open says which alert it was)."""
        return (
            ev.kind in NOT_IN_THREAD
            or (ev.kind in DENIED and outbox.repeats_a_refusal(s, event=ev, within=QUIET_REPEATS))
            or (ev.incident_id is None and ev.kind.startswith("alert."))
        )

    def _write(self, change: Callable[[Session], None]) -> None:
        with self.deps.store.session() as s:
            change(s)
            s.commit()

    def _post(self, unmark: Callable[[Session], None], **kwargs: object) -> dict[str, Any]:
        """chat.postMessage, already marked in flight. Refused: nothing is in flight any more. No answer or a
        5xx: it stays in flight, and the next sync looks for it before posting again."""
        try:
            return self._call("chat.postMessage", **kwargs)
        except Exception as exc:
            if _refused(exc):
                self._write(unmark)
            raise

    # --- one incident ---------------------------------------------------------------------------------
    def sync_incident(self, incident_id: int) -> None:
        self._until_caught_up(
            lambda: self._sync_incident(incident_id),
            lambda s: outbox.incident_behind(s, incident_id=incident_id),
        )

    def _until_caught_up(self, one_pass: Callable[[], bool], behind: Callable[[Session], bool]) -> None:
        """Sync until caught up. Whoever holds the lease looks again after releasing it: an event recorded
        while it synced (whose own sync found the lease taken and gave up) is posted now, not a minute later."""
        for _ in range(AGAIN):
            if not one_pass():
                return
            with self.deps.store.session() as s:
                if not behind(s):
                    return

    def _sync_incident(self, incident_id: int) -> bool:
        """One pass; False when another syncer holds the lease (it will look again when done)."""
        now, token = self.deps.now(), self._token()
        with self.deps.store.session() as s, self._fenced(token):
            taken = outbox.take_incident_lease(s, incident_id=incident_id, now=now, until=now + LEASE, token=token)
            leader.check_current(s)  # a scheduler that lost its lease claims no Slack post (store/leader.py)
            s.commit()
        SLACK_SYNCS.labels(result="synced" if taken else "busy").inc()
        if not taken:
            return False
        with self._leased(token):
            self._sync_incident_leased(incident_id, token)
        return True

    @staticmethod
    def _fenced(token: int | None) -> Any:
        """The lease is taken under the token's fence (a background sync of the leader is not in a job's)."""
        return leader.fencing(token) if token is not None else nullcontext()

    def _sync_incident_leased(self, incident_id: int, token: int | None) -> None:
        released = False
        try:
            with self.deps.store.session() as s:  # one read of the state; the alert is built from it once
                incident = s.get(Incident, incident_id)
                if incident is None:
                    return
                events = outbox.thread_events(s, incident_id=incident_id, after=incident.slack_cursor)
                quiet = [ev for ev in events if self._quiet(s, ev)]
                if incident.slack_ts is not None and events and len(quiet) == len(events):
                    # only quiet events (a click repeated, say): nothing to show, so the alert is not rebuilt;
                    # the cursor passes them and the lease goes back in one write
                    assert events[-1].id is not None
                    outbox.confirm_thread(s, incident_id=incident_id, event_id=events[-1].id)
                    outbox.release_incident_lease(s, incident_id=incident_id, token=token)
                    s.commit()
                    released = True
                    return
                view = build_view(self.deps, s, incident)
            payload = alert(view).payload()
            fingerprint = _fingerprint(payload)
            if incident.slack_ts is None:
                self._post_parent(incident, payload, fingerprint)
            self._post_thread(incident, events, {ev.id for ev in quiet})
            if incident.slack_rendered != fingerprint:
                self._call("chat.update", channel=incident.slack_channel, ts=incident.slack_ts, **payload)
                self._write(partial(outbox.rendered, incident_id=incident_id, fingerprint=fingerprint))
        finally:
            if not released:
                self._write(partial(outbox.release_incident_lease, incident_id=incident_id, token=token))

    def _post_parent(self, incident: Incident, payload: dict[str, Any], fingerprint: str) -> None:
        """Post the alert (or find the one whose answer was lost); `incident` then says where it is."""
        assert incident.id is not None
        incident_id, meta = incident.id, _parent_marker(incident)
        found = None
        if incident.slack_pending == PARENT:
            found = self.lookup.in_channel(incident.channel, PARENT_POST, meta["event_payload"])
        if found is not None:
            (channel, ts), fingerprint = found, ""  # what it shows is not known: chat.update makes it current
        else:
            if incident.slack_pending != PARENT:
                self._write(partial(outbox.mark_incident, incident_id=incident_id, pending=PARENT))
            resp = self._post(
                partial(outbox.mark_incident, incident_id=incident_id, pending=None),
                channel=incident.channel,
                metadata=meta,
                **payload,
            )
            channel, ts = str(resp["channel"]), str(resp["ts"])
            self.lookup.remember(incident.channel, channel)
        self._write(
            partial(outbox.confirm_parent, incident_id=incident_id, channel=channel, ts=ts, rendered=fingerprint)
        )
        incident.slack_channel, incident.slack_ts, incident.slack_rendered = channel, ts, fingerprint
        incident.slack_pending = None

    def _post_thread(self, incident: Incident, events: list[Event], quiet: set[int | None]) -> None:
        assert incident.id is not None and incident.slack_channel is not None and incident.slack_ts is not None
        incident_id, channel, thread_ts = incident.id, incident.slack_channel, incident.slack_ts
        skipped: int | None = None  # events not posted since the last write: the cursor passes them in one go

        def passing(then: Callable[[Session], None] | None = None) -> Callable[[Session], None]:
            def change(s: Session) -> None:
                if skipped is not None:
                    outbox.confirm_thread(s, incident_id=incident_id, event_id=skipped)
                if then is not None:
                    then(s)

            return change

        for ev in events:
            assert ev.id is not None
            event_id, meta = ev.id, _event_marker(ev)
            confirm = partial(outbox.confirm_thread, incident_id=incident_id, event_id=event_id)
            if event_id in quiet:
                skipped = event_id
                continue
            message = thread_event(ev).payload()  # before the mark: a message that cannot be built is not sent
            if incident.slack_pending == event_id:
                if self.lookup.in_thread(channel, thread_ts, EVENT_POST, meta["event_payload"]) is not None:
                    self._write(confirm)
                    skipped, incident.slack_pending = None, None
                    continue
            else:
                mark = partial(outbox.mark_incident, incident_id=incident_id, pending=event_id)
                self._write(passing(mark))
                skipped, incident.slack_pending = None, event_id
            self._post(
                partial(outbox.mark_incident, incident_id=incident_id, pending=None),
                channel=channel,
                thread_ts=thread_ts,
                metadata=meta,
                **message,
            )
            self._write(confirm)  # the cursor advances and the mark clears in one statement
            incident.slack_pending = None
        if skipped is not None:
            self._write(passing())

    # --- playbook-level events (no incident), and each rollout's message ------------------------------------
    def sync_playbook(self, name: str) -> None:
        self._until_caught_up(lambda: self._sync_playbook(name), lambda s: outbox.channel_behind(s, playbook=name))

    def _sync_playbook(self, name: str) -> bool:
        loaded = self.playbooks.get(name)
        if loaded is None:
            return False
        now, token = self.deps.now(), self._token()
        with self.deps.store.session() as s:
            with self._fenced(token):
                cursor = outbox.take_channel_lease(s, playbook=name, now=now, until=now + LEASE, token=token)
                leader.check_current(s)
            s.commit()
            if cursor is None:
                return False
            events = outbox.channel_events(s, playbook=name, after=cursor.last_event_id)
            quiet = {ev.id for ev in events if self._quiet(s, ev)}
            shown: set[int] = set()
            if loaded.playbook.rollout is not None:
                since = now - timedelta(days=1)
                shown = {ro.id for ro in outbox.rollouts_to_show(s, playbook=name, since=since) if ro.id is not None}
        try:
            with self._leased(token):
                touched = self._post_channel(loaded, cursor.pending, events, quiet)
                for rollout_id in sorted(shown | touched):  # each rollout's message brought up to date, once
                    self._rollout_message(loaded, rollout_id)
        finally:
            self._write(partial(outbox.release_channel_lease, playbook=name, token=token))
        return True

    def _post_channel(
        self, loaded: LoadedPlaybook, pending: int | None, events: list[Event], quiet: set[int | None]
    ) -> set[int]:
        """Each event in the playbook's channel; a rollout's events in the thread of the rollout's message.
        The rollouts whose events were posted (their messages are brought up to date after)."""
        name, channel = loaded.playbook.name, loaded.playbook.channel
        touched: set[int] = set()
        for ev in events:
            assert ev.id is not None
            event_id, meta = ev.id, _event_marker(ev)
            confirm = partial(outbox.confirm_channel, playbook=name, event_id=event_id)
            if event_id in quiet:
                self._write(confirm)
                continue
            rollout_id = ev.details.get("rollout") if ev.kind.startswith("rollout.") else None
            where: tuple[str, str | None] = (channel, None)
            if type(rollout_id) is int and loaded.playbook.rollout is not None:
                found = self._rollout_where(loaded, rollout_id)
                if found is not None:
                    where = found
                    touched.add(rollout_id)
                    if ev.kind == "rollout.started":  # the rollout's message is that event
                        self._write(confirm)
                        continue
            message = thread_event(ev).payload()
            if pending == event_id:
                look = meta["event_payload"]
                if where[1] is not None:
                    seen = self.lookup.in_thread(where[0], where[1], EVENT_POST, look) is not None
                else:
                    seen = self.lookup.in_channel(channel, EVENT_POST, look) is not None
                if seen:
                    self._write(confirm)
                    pending = None
                    continue
            else:
                self._write(partial(outbox.mark_channel, playbook=name, pending=event_id))
                pending = event_id
            thread = {"thread_ts": where[1]} if where[1] is not None else {}
            resp = self._post(
                partial(outbox.mark_channel, playbook=name, pending=None),
                channel=where[0],
                metadata=meta,
                **thread,
                **message,
            )
            self.lookup.remember(channel, str(resp["channel"]))
            self._write(confirm)
            pending = None
        return touched

    def _rollout_where(self, loaded: LoadedPlaybook, rollout_id: int) -> tuple[str, str] | None:
        """Where the rollout's message is, posting it first if it is not there yet; None when the rollout is
        not this playbook's. The message itself is brought up to date once, after the events."""
        with self.deps.store.session() as s:
            ro = s.get(Rollout, rollout_id)
            if ro is None or ro.playbook != loaded.playbook.name:
                return None
            if ro.slack_channel is not None and ro.slack_ts is not None:
                return ro.slack_channel, ro.slack_ts
        return self._rollout_message(loaded, rollout_id)

    def _rollout_message(self, loaded: LoadedPlaybook, rollout_id: int) -> tuple[str, str] | None:
        """Post the rollout's message (or find the one whose answer was lost), or bring it up to date; where
        it is. None when the rollout is not this playbook's."""
        with self.deps.store.session() as s:
            ro = s.get(Rollout, rollout_id)
            if ro is None or ro.playbook != loaded.playbook.name:
                return None
            payload = rollout_message(build_rollout_view(s, ro, loaded.playbook, self.deps.now())).payload()
        fingerprint = _fingerprint(payload)
        if ro.slack_channel is not None and ro.slack_ts is not None:
            if ro.slack_rendered != fingerprint:
                self._call("chat.update", channel=ro.slack_channel, ts=ro.slack_ts, **payload)
                self._write(partial(outbox.rollout_rendered, rollout_id=rollout_id, fingerprint=fingerprint))
            return ro.slack_channel, ro.slack_ts
        channel = loaded.playbook.channel
        meta = marker(ROLLOUT_POST, playbook=ro.playbook, rollout_id=rollout_id, started_at=ro.started_at.isoformat())
        found = self.lookup.in_channel(channel, ROLLOUT_POST, meta["event_payload"]) if ro.slack_pending else None
        if found is not None:
            (where, ts), fingerprint = found, ""  # what it shows is not known: the next sync updates it
        else:
            self._write(partial(outbox.mark_rollout, rollout_id=rollout_id, pending=True))
            resp = self._post(
                partial(outbox.mark_rollout, rollout_id=rollout_id, pending=False),
                channel=channel,
                metadata=meta,
                **payload,
            )
            where, ts = str(resp["channel"]), str(resp["ts"])
            self.lookup.remember(channel, where)
        confirm = partial(outbox.confirm_rollout, rollout_id=rollout_id, channel=where, ts=ts, rendered=fingerprint)
        self._write(confirm)
        return where, ts
