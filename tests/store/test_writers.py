"""SQLite has one writer at a time. Writers of several processes (web workers beside the scheduler process)
queue on an flock beside the database file instead of sleeping in SQLite's busy handler; a process that dies
holding it leaves it to the others; one held too long gives SQLite's own error, not a hang."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rollback_bot.store import Store, inbox
from rollback_bot.store.database import _flock
from rollback_bot.store.models import ClickInbox

HOLDER = """
import sys
from datetime import UTC, datetime
from rollback_bot.store import Store, inbox
store = Store(sys.argv[1])
with store.one_statement() as conn:  # holds the writer until stdin closes or the process is killed
    inbox.accept(conn, key="held", at=datetime.now(UTC), click="{}")
    print("holding", flush=True)
    sys.stdin.read()
"""


def _write(store: Store, key: str, done: list[str]) -> None:
    with store.session() as s:
        s.add(ClickInbox(key=key, received_at=datetime.now(UTC), click="{}"))
        s.commit()
    done.append(key)


def test_a_writer_waits_for_another_process_and_takes_over_when_it_is_killed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    store = Store(url)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"holding"
        done: list[str] = []
        writer = threading.Thread(target=_write, args=(store, "mine", done))
        writer.start()
        writer.join(0.5)
        assert done == []  # queued behind the other process's writer, not failed
        holder.send_signal(signal.SIGKILL)  # dies holding it: the kernel drops its flock
        writer.join(10)
        assert done == ["mine"]
    finally:
        holder.kill()
        holder.wait()
    with store.session() as s:
        assert s.get(ClickInbox, "mine") is not None
    store.close()


def test_a_writer_held_too_long_gives_sqlites_own_error(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/bot.db")
    other = os.open(f"{tmp_path}/bot.db.writer", os.O_RDWR)  # another holder (flock is per open file)
    try:
        _flock(other)
        fd = os.open(f"{tmp_path}/bot.db.writer", os.O_RDWR)
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            _flock(fd, timeout=0.2)
        assert time.monotonic() - started < 5
        os.close(fd)
    finally:
        os.close(other)
    with store.one_statement() as conn:  # released with its file: writes go on
        assert inbox.accept(conn, key="after", at=datetime.now(UTC), click="{}")
    store.close()


def test_a_click_written_in_one_statement_is_there_for_another_process(store: Store) -> None:
    """The inbox insert runs in autocommit (one round trip before a click's 200): committed when it returns."""
    with store.one_statement() as conn:
        assert inbox.accept(conn, key="k1", at=datetime.now(UTC), click="{}")
        assert not inbox.accept(conn, key="k1", at=datetime.now(UTC), click="{}")  # a replay conflicts
    other = Store(store.url)
    try:
        with other.session() as s:
            row = s.get(ClickInbox, "k1")
            assert row is not None and row.attempts == 0 and row.done_at is None
    finally:
        other.close()
