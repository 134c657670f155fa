"""Leadership among scheduler processes: any number may run (on any machines sharing the database); the one
holding the lease (store/leader.py) acts, the others stand by and take over once it expires.

A process acts only while its own view of the lease is fresh: it renews every `period / 5` (a standby tries
every `period / 20`), and stops acting `period / 5` before the lease it last renewed runs out by its own
monotonic clock, so it has stopped before any standby can take over, even when its renewals fail (the database
is cut off) or it was paused. Clocks of the machines must agree (NTP) to well within `period / 5`: the lease's
expiry is written in the acting process's clock and read in the others'. Whatever slips
through (a job already running when the process froze) is stopped by the fence: the acting write checks the
token in its transaction."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from rollback_bot.clock import Clock
from rollback_bot.store import Store
from rollback_bot.store import leader as store_leader
from rollback_bot.telemetry import LEADER, TAKEOVERS

log = logging.getLogger(__name__)
PERIOD = timedelta(seconds=10)  # how long a lease lasts without renewal


class Leadership:
    def __init__(self, store: Store, clock: Clock, *, period: timedelta = PERIOD, holder: str | None = None) -> None:
        self.store, self.clock, self.period = store, clock, period
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.token: int | None = None
        self._valid_until = 0.0  # time.monotonic() until which this process may act on its last renewal
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_gain: list[Callable[[int], None]] = []
        self.last_error: str | None = None

    @property
    def real_period(self) -> float:
        return self.period.total_seconds() / self.clock.speed

    def leading(self) -> int | None:
        """The token to act under, or None while standing by (or while the last renewal is too old)."""
        if self.token is None or time.monotonic() >= self._valid_until:
            return None
        return self.token

    def try_once(self) -> int | None:
        """Claim or renew the lease now; the token, or None (another holds it, or the database failed)."""
        asked = time.monotonic()
        try:
            with self.store.session() as s:
                token = store_leader.claim(s, holder=self.holder, now=self.clock.now(), period=self.period)
                s.commit()
        except Exception as exc:  # the database is away: stand by (the lease runs out for the others too)
            if self.last_error != type(exc).__name__:
                log.warning("cannot reach the database to hold the scheduler lease (%s); standing by", exc)
            self.last_error = type(exc).__name__
            self._lose("the database cannot be reached")
            return None
        self.last_error = None
        if token is None:
            self._lose("another process holds the lease")
            return None
        gained = token != self.token
        self.token = token
        self._valid_until = asked + self.real_period * 0.8  # stop acting before anyone else may start
        LEADER.set(1)
        if gained:
            TAKEOVERS.inc()
            log.info("leading the scheduler processes (token %s, holder %s)", token, self.holder)
            for hook in self.on_gain:
                try:
                    hook(token)
                except Exception:
                    log.exception("a leadership hook failed")
        return token

    def _lose(self, why: str) -> None:
        if self.token is not None:
            if why == "stopping":
                log.info("gave up the scheduler lease: this process stops, a standby takes over")
            else:
                log.warning("no longer leading the scheduler processes: %s; standing by", why)
        self.token = None
        self._valid_until = 0.0
        LEADER.set(0)

    def start(self) -> None:
        """Keep trying (standing by) or renewing (leading) in the background."""

        def run() -> None:
            while not self._stopping.is_set():
                self.try_once()
                # leading: renew every fifth of the lease; standing by: look twenty times a lease, so a takeover
                # comes within a twentieth of the lease after it runs out
                self._stopping.wait(self.real_period / (5 if self.token is not None else 20))

        self.try_once()
        self._thread = threading.Thread(target=run, name="leadership", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop, and give the lease up if held, so a standby takes over at its next try."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.token is not None:
            try:
                with self.store.session() as s:
                    store_leader.release(s, holder=self.holder, now=self.clock.now())
                    s.commit()
            except Exception as exc:
                log.warning("could not give the scheduler lease up (%s); it runs out by itself", exc)
        self._lose("stopping")

    def run(self, job: Callable[[], object]) -> bool:
        """Run a scheduler job if this process leads, fenced by its token; False when it stood by."""
        token = self.leading()
        if token is None:
            return False
        with store_leader.fencing(token):
            try:
                job()
            except store_leader.Fenced as exc:
                log.warning("a scheduler job stopped: %s; this process no longer leads", exc)
                self._lose("fenced")
        return True
