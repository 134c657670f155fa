"""Work that happens after a person got their answer (a Slack reply, an action's webhook, an upload): a small
thread pool whose failures are logged, never raised into the request that queued them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
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
