"""Reading many sources at once on a bounded thread pool, each within its deadline, never raising.

Sources with the same URL and connection settings share one fetch. A fetch still running when its
sources are next read is joined, not repeated, so a source that never answers ties up one thread at
most; `read_all` itself returns by the longest deadline plus a margin whatever the network does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime

import requests

from rollback_bot.metrics.deadline import Watch, guard_session
from rollback_bot.metrics.fetch import DEFAULT_MAX_BYTES, Answer, get_json
from rollback_bot.metrics.sources import MetricSource, redacted
from rollback_bot.rules.readings import Reading

log = logging.getLogger(__name__)
MARGIN = 0.5  # seconds read_all waits past the longest deadline before giving up on a fetch


class Reader:
    """Reads metric sources concurrently through one Session; thread-safe, reusable across polls."""

    def __init__(self, session: requests.Session, *, max_workers: int = 32, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.session, self.max_bytes = session, max_bytes
        guard_session(session, max_workers)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="metric-read")
        self._running: dict[object, Future[Answer]] = {}
        self._watches: dict[Future[Answer], Watch] = {}
        self._answered: dict[object, bool] = {}  # fetch key -> whether its last fetch answered
        self._lock = threading.Lock()

    def read_all(self, sources: Sequence[MetricSource], now: Callable[[], datetime]) -> list[Reading]:
        """One Reading per source, in order; a source that fails (in any way) fails alone."""
        asked_at = _safe_now(now)
        try:
            return self._read_all(sources, now, asked_at)
        except Exception as exc:
            log.warning("reading %d sources failed as a whole: %s", len(sources), type(exc).__name__)
            reason = f"reader failed: {type(exc).__name__}"
            return [Reading.error(getattr(s, "signal", "?"), asked_at, reason) for s in sources]

    def _read_all(
        self, sources: Sequence[MetricSource], now: Callable[[], datetime], asked_at: datetime
    ) -> list[Reading]:
        groups: dict[object, list[MetricSource]] = {}
        for src in sources:
            groups.setdefault(src.share_key(), []).append(src)
        # endpoints that answered last time start first, those that failed last: hanging endpoints cannot take
        # the threads healthy ones need
        order = sorted(groups, key=lambda k: {True: 0, None: 1, False: 2}[self._answered.get(k)])
        futures = {key: self._start(key, groups[key], asked_at) for key in order}
        longest = max((s.timeout for s in sources), default=0.0)
        wait(futures.values(), timeout=longest + MARGIN)
        late = {key for key, f in futures.items() if not f.done()}  # decided before cutting them off
        self._expire({key: futures[key] for key in late})
        at = _safe_now(now)
        return [self._finish(src, futures[src.share_key()], at, src.share_key() in late) for src in sources]

    def _start(self, key: object, group: list[MetricSource], asked_at: datetime) -> Future[Answer]:
        """The running fetch for `key`, or a new one with the longest timeout of the sources sharing it."""
        first, timeout = group[0], max(s.timeout for s in group)
        with self._lock:
            running = self._running.get(key)
            if running is not None and not running.done():
                return running
            watch = Watch()
            future = self._pool.submit(
                get_json, self.session, first.endpoint, first.params(asked_at), timeout, self.max_bytes, asked_at, watch
            )
            self._running[key] = future
            self._watches[future] = watch
        future.add_done_callback(lambda f: self._forget(key, f))
        return future

    def _forget(self, key: object, future: Future[Answer]) -> None:
        with self._lock:
            if not future.cancelled():  # one never started says nothing about its endpoint
                failed = future.exception() is not None or bool(future.result().failure)
                self._answered[key] = not failed
            self._watches.pop(future, None)
            if self._running.get(key) is future:
                del self._running[key]

    def _expire(self, futures: dict[object, Future[Answer]]) -> None:
        """Shut down the sockets of fetches past their deadline (their threads are free at once); drop the
        ones still queued."""
        # a fetch still queued is dropped (its callback runs here, not under the lock); one running is cut off
        running = {key: f for key, f in futures.items() if not f.cancel()}
        with self._lock:
            self._answered.update(dict.fromkeys(running, False))
            watches = [self._watches[f] for f in running.values() if f in self._watches]
        for watch in watches:
            watch.expire()

    def _finish(self, src: MetricSource, future: Future[Answer], at: datetime, late: bool) -> Reading:
        if future.cancelled():
            reading = Reading.error(src.signal, at, f"no answer within {src.timeout:g}s (every read thread was busy)")
        elif late:
            reading = Reading.error(src.signal, at, f"no answer within {src.timeout:g}s")
        else:
            try:
                reading = src.interpret(future.result(), at)
            except Exception as exc:
                log.warning("reading %s raised %s; recorded as a failed read", src.signal, type(exc).__name__)
                reading = Reading.error(src.signal, at, f"cannot read the answer: {type(exc).__name__}")
        reading = redacted(src, reading)
        if reading.status == "error":
            log.debug("read of %s failed: %s", src.signal, reading.detail)
        return reading

    def close(self) -> None:
        """Stop taking fetches; running ones finish in the background (their sockets time out)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _safe_now(now: Callable[[], datetime]) -> datetime:
    try:
        return now()
    except Exception:
        return datetime.now(UTC)
