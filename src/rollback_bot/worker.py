"""Work that happens after a person got their answer (a Slack reply, an action's webhook, an upload): a small
thread pool whose failures are logged, never raised into the request that queued them."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

log = logging.getLogger(__name__)
_background_nice = 0  # how much lower than the process the background threads started from now on run


def yield_cpu_to_requests(nice: int = 10) -> None:
    """For a process beside web workers (the scheduler process): background threads started from now on (the
    clicks worked off, the Slack sync, replies, webhooks) run `nice` steps lower, so a burst of clicks being
    worked off never delays a web worker's 200 on the same machine: the kernel gives the web workers the CPU
    first, and CPU they leave idle still comes here. Polling and the ladder keep the process's priority."""
    global _background_nice
    _background_nice = nice


def background_thread() -> None:
    """The initializer of background thread pools: lower this thread's priority if asked (Linux threads each
    have their own)."""
    if not _background_nice or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + _background_nice)
    except OSError as exc:  # not allowed here: run at the process's priority
        log.info("background thread priority unchanged: %s", exc)


class Worker:
    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name, initializer=background_thread)
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def __call__(self, job: Callable[[], object]) -> None:
        future = self._pool.submit(self._run, job)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _run(self, job: Callable[[], object]) -> None:
        try:
            job()
        except Exception:
            log.exception("%s: a job failed (what it was doing is resumed by the scheduler or logged)", self.name)

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until what was queued so far is done (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return
            wait(pending, timeout=max(deadline - time.monotonic(), 0.0))
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name}: {len(pending)} job(s) still running after {timeout} s")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=False)


def inline(job: Callable[[], object]) -> None:
    """Run at once, in the caller's thread: the CLI and drills, where nobody waits for a reply."""
    job()
