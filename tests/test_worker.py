"""Background work in a process beside web workers yields the CPU to them: its threads run at a lower
priority (Linux threads each have their own), so a burst of clicks being worked off never delays a 200."""

from __future__ import annotations

import os
import threading

import pytest

from rollback_bot import worker
from rollback_bot.worker import Worker


def _priority_of_a_job(w: Worker) -> int:
    seen: list[int] = []
    w(lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    w.drain(10)
    w.close()
    return seen[0]


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread priority on this system")
def test_background_threads_yield_to_requests_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert _priority_of_a_job(Worker("plain", 1)) == mine  # by default: the process's priority
    monkeypatch.setattr(worker, "_background_nice", 0)
    worker.yield_cpu_to_requests(5)
    assert _priority_of_a_job(Worker("yielding", 1)) == min(mine + 5, 19)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the caller's own is unchanged
