"""Clicks: durable, then acknowledged, then done.

A click is validated and written to the inbox (store/inbox.py) in one short transaction, and only then does
Slack get its 200. What the click does (the role check against the incident's playbook, the approval, the
audit event, the action it may start) and the clicker's answer come after, from `ClickDesk.work`, under a lease
on the inbox row, so:

- the answer to Slack never waits for the database's busiest moment, a Slack lookup or an action's webhook;
- a process killed after the 200 loses nothing: its clicks are worked off by the next process that sweeps
  (the scheduler's loop, or a web process's watchdog), once their lease runs out;
- what a click records is recorded once even when two processes work on it: the flow's transaction takes the
  click's key (store/inbound), so the second rolls back.

Where clicks are worked off: in the process that took them when it runs the scheduler or is told to
(`here`), else by the scheduler process, which polls the inbox several times a second; a web process sweeps
what nobody took within `FALLBACK`, so clicks are done even while the scheduler is down."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from rollback_bot import flows
from rollback_bot.flows import panic as flows_panic
from rollback_bot.flows import rollout as flows_rollout
from rollback_bot.flows.deps import Outcome
from rollback_bot.slack import inbound
from rollback_bot.slack.limits import esc
from rollback_bot.slack.runtime import SlackRuntime
from rollback_bot.store import inbound as store_inbound
from rollback_bot.store import inbox
from rollback_bot.telemetry import CLICKS, CLICKS_WAITING
from rollback_bot.worker import Worker

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=15)  # longer than any click takes (a Slack role lookup times out well before)
FALLBACK = timedelta(seconds=10)  # a web process works off clicks nobody took for this long
LATE = timedelta(seconds=30)  # a click waiting longer makes /healthz say so (nothing works clicks off)
ATTEMPTS = 3  # a click that fails this often is answered with the failure and dropped from the inbox
KEEP_DONE = timedelta(days=1)  # done clicks are kept this long (their answers, for support), then dropped
POLL_SECONDS = 0.2  # how often the scheduler process looks for clicks taken by web processes


class CannotTake(Exception):
    """The click could not be written to the inbox (the database is unreachable): it gets a 503."""


class ClickDesk:
    def __init__(self, rt: SlackRuntime, *, here: bool, threads: int = 4) -> None:
        self.rt, self.here = rt, here
        self.me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.worker = Worker("clicks", threads)
        self._stopping = threading.Event()
        self._loop: threading.Thread | None = None

    def take(self, clicked: inbound.Click) -> bool:
        """Write the click before its 200; False when it is a replay (taken before: nothing more happens)."""
        key = store_inbound.current_key() or f"socket:{uuid.uuid4().hex}"  # Socket Mode has no signature
        with self.rt.deps.store.one_statement() as conn:
            fresh = inbox.accept(conn, key=key, at=self.rt.deps.now(), click=clicked.model_dump_json())
        if fresh and self.here:
            self.worker(lambda: self.work(key))
        return fresh

    def work(self, key: str) -> None:
        """Do what the click asks and answer the clicker, if nobody else holds it."""
        deps = self.rt.deps
        with deps.store.session() as s:
            row = inbox.claim(s, key=key, by=self.me, now=deps.now(), lease=LEASE)
            s.commit()
        if row is None:
            return
        try:
            clicked = inbound.Click.model_validate_json(row.click)
        except ValueError as exc:  # written by another version of the bot: nobody to answer; say so in the log
            log.error("click %s... cannot be read (%s); dropped from the inbox", key[:16], str(exc).splitlines()[0])
            with deps.store.session() as s:
                inbox.finish(s, key=key, by=self.me, now=deps.now(), answer="(unreadable)")
                s.commit()
            return
        try:
            with store_inbound.handling(key, row.received_at):
                outcome = dispatch(self.rt, clicked)
        except store_inbound.Replayed:  # recorded before: by a worker whose lease ran out, or one that died after
            log.warning("click %s... was recorded before; marked done", key[:16])
            with deps.store.session() as s:
                inbox.finish(s, key=key, by=self.me, now=deps.now(), answer="(recorded before)")
                s.commit()
            return
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("click %s... failed [%s] (attempt %s of %s)", key[:16], ref, row.attempts, ATTEMPTS)
            said = f":warning: Something went wrong; it is logged as `{ref}`."
            if row.attempts < ATTEMPTS:  # tried again when the lease runs out; the person knows meanwhile
                again = int(LEASE.total_seconds())
                self.rt.answer_later(
                    clicked, f"{said} I will try again in {again} s (try {row.attempts} of {ATTEMPTS})."
                )
                return
            CLICKS.labels(result="failed").inc()
            answer = f"{said} Nothing was recorded: try again."
        else:
            CLICKS.labels(result="ok" if outcome.ok else "refused").inc()
            mark = ":white_check_mark:" if outcome.ok else ":no_entry:"
            answer = f"{mark} {esc(outcome.message[:1].upper() + outcome.message[1:])}"
        with deps.store.session() as s:
            inbox.finish(s, key=key, by=self.me, now=deps.now(), answer=answer)
            s.commit()
        self.rt.answer_later(clicked, answer)

    def sweep(self, older_than: timedelta) -> int:
        """Work off clicks that nobody holds and that were taken more than `older_than` ago; how many."""
        keys = self._waiting(older_than)
        for key in keys:
            try:
                self.work(key)
            except Exception:
                log.exception("click %s... failed; it is tried again once its lease runs out", key[:16])
        return len(keys)

    def _waiting(self, older_than: timedelta) -> list[str]:
        now = self.rt.deps.now()
        with self.rt.deps.store.session() as s:
            return inbox.waiting(s, now=now, received_before=now - older_than)

    def forget_done(self, older_than: timedelta = KEEP_DONE) -> int:
        """Drop clicks done more than `older_than` ago (what they did is in the timeline)."""
        with self.rt.deps.store.session() as s:
            gone = inbox.forget_done_before(s, before=self.rt.deps.now() - older_than)
            s.commit()
        return gone

    def late(self) -> str | None:
        """Clicks waiting longer than LATE, in words (for /healthz); also sets the waiting gauge."""
        with self.rt.deps.store.session() as s:
            waiting, oldest = inbox.backlog(s)
        CLICKS_WAITING.set(waiting)
        age = (self.rt.deps.now() - oldest).total_seconds() if oldest is not None else 0.0
        if age <= LATE.total_seconds():
            return None
        return f"{waiting} click(s) not worked off, the oldest for {age:.0f} s: is the scheduler process running?"

    def start_loop(self, older_than: timedelta = timedelta(0), every: float = POLL_SECONDS) -> None:
        """In the scheduler process: keep working off clicks that web processes took, several at once (the
        worker's threads), each key handed out once while it is in hand."""
        in_hand: set[str] = set()
        lock = threading.Lock()

        def one(key: str) -> None:
            try:
                self.work(key)
            finally:
                with lock:
                    in_hand.discard(key)

        def run() -> None:
            while not self._stopping.wait(every):
                try:
                    for key in self._waiting(older_than):
                        with lock:
                            if key in in_hand:
                                continue
                            in_hand.add(key)
                        self.worker(lambda key=key: one(key))  # type: ignore[misc]
                except Exception:
                    log.exception("click sweep failed; the next one tries again")

        self._loop = threading.Thread(target=run, name="clicks", daemon=True)
        self._loop.start()

    def drain(self, timeout: float = 10.0) -> None:
        self.worker.drain(timeout)

    def close(self) -> None:
        self._stopping.set()
        self.worker.close()


def dispatch(rt: SlackRuntime, clicked: inbound.Click) -> Outcome:
    if clicked.action.action_id.startswith("rollout_"):
        return _dispatch_rollout(rt, clicked)
    if clicked.action.action_id == "panic_ack":
        return _dispatch_panic(rt, clicked)
    return _dispatch_incident(rt, clicked)


def _carried(clicked: inbound.Click, *keys: str) -> tuple[int, ...] | None:
    """The integers our buttons carry in their JSON value (not a bool, a float or a string); None otherwise."""
    try:
        carried = json.loads(clicked.action.value or "{}")
        values = tuple(carried[k] for k in keys)
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    return values if all(type(v) is int for v in values) else None


def _dispatch_panic(rt: SlackRuntime, clicked: inbound.Click) -> Outcome:
    carried = _carried(clicked, "p")
    if carried is None or not 0 < carried[0] < 2**31:
        return Outcome(False, "this button carries no pre-launch alert; use /rollback status")
    return flows_panic.acknowledge(rt.deps, rt.playbooks, clicked.user.id, carried[0])


def _dispatch_rollout(rt: SlackRuntime, clicked: inbound.Click) -> Outcome:
    carried = _carried(clicked, "r", "s")
    if carried is None:
        return Outcome(False, "this button carries no rollout; use /rollback status")
    rollout_id, stage = carried
    verb = clicked.action.action_id.removeprefix("rollout_")
    return flows_rollout.act(rt.deps, rt.playbooks, rollout_id, verb, clicked.user.id, stage=stage)


def _dispatch_incident(rt: SlackRuntime, clicked: inbound.Click) -> Outcome:
    carried = _carried(clicked, "i")
    if carried is None:
        return Outcome(False, "this button carries no incident; use /rollback status")
    (incident_id,) = carried
    if not 0 < incident_id < 2**31:
        return Outcome(False, f"there is no incident #{incident_id}")
    deps, user, action_id = rt.deps, clicked.user.id, clicked.action.action_id
    if action_id.startswith("approve:"):
        return flows.approve(deps, incident_id, action_id.removeprefix("approve:"), user)
    verbs = {"ack": flows.acknowledge, "hold": flows.hold, "release": flows.release, "resolve": flows.resolve}
    return verbs[action_id](deps, incident_id, user)
