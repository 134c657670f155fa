"""A click answered 200 is durable: kill -9 `serve` right after the 200 of a note and of the approval that
completes an action, restart it, and nothing is lost: both are in the timeline, the action runs, and every
send of its webhook carries the same Idempotency-Key."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from rollback_bot.store import ActionRun, Approval, Store
from rollback_bot.store.audit import timeline
from rollback_bot.store.verify import chains, verify_chain
from tests.helpers import loopback_session
from tests.slack.conftest import free_port, start, wait_until
from tests.slack.fake_slack import Call
from tests.slack.test_production import client


def _ok(url: str) -> bool:
    try:
        return bool(loopback_session().get(url, timeout=1).status_code == 200)
    except Exception:
        return False


@pytest.mark.slow
def test_kill_9_right_after_the_200_of_an_approval_loses_nothing(deployment: dict[str, Any]) -> None:
    env, procs, slack, http = deployment["env"], deployment["procs"], deployment["slack"], deployment["http"]
    playbook = Path(env["ROLLBACK_PLAYBOOKS"])
    # a short webhook timeout, so the restarted process may resend a stage the dead one left running soon
    text = playbook.read_text().replace(
        'body: {svc: "{{ service }}"}}', 'body: {svc: "{{ service }}"}, timeout: 1s, retries: 0}'
    )
    assert "timeout: 1s, retries: 0" in text
    playbook.write_text(text)
    http.delay["/lock"] = 3.0  # the first process dies before any answer
    port = free_port()
    env = {**env, "ROLLBACK_PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    serve = start([sys.executable, "-m", "rollback_bot.cli", "serve"], env, procs)
    wait_until(lambda: _ok(f"{url}/healthz"), 30, "serve", procs)
    wait_until(lambda: slack.parents(), 30, "the alert", procs)
    c = client(url, slack)
    note = c.slash("note 1 rolling back by hand", user="UIC")
    assert note.status_code == 200 and Call("r", note.json()).text_of_blocks() == "Note added"
    approved = c.click("approve:lock", "UIC")
    assert approved.status_code == 200
    serve.send_signal(signal.SIGKILL)  # right after the 200: whatever the worker was doing is cut off
    serve.wait(timeout=10)
    procs.remove(serve)
    http.delay.pop("/lock")

    again = start([sys.executable, "-m", "rollback_bot.cli", "serve"], env, procs)
    store = Store(env["DATABASE_URL"])
    try:

        def lock_done() -> bool:
            with store.session() as s:
                return any(r.status == "succeeded" for r in s.exec(select(ActionRun)))

        wait_until(lock_done, 45, "the action, after the restart", procs)
        with store.session() as s:
            events = timeline(s, 1)
            approvals = s.exec(select(Approval)).all()
            reports = [verify_chain(s, chain) for chain in chains(s, 1)]
        kinds = [e.kind for e in events]
        assert [(a.user_id, a.action_id) for a in approvals] == [("UIC", "lock")]
        assert [e.details.get("text") for e in events if e.kind == "note"] == ["rolling back by hand"]
        assert kinds.count("approval") == 1 and kinds.count("action.succeeded") == 1
        assert all(r.ok for r in reports), reports
        keys = {p.headers.get("Idempotency-Key") for p in http.posts("/lock")}
        assert len(http.posts("/lock")) >= 1 and keys == {"rollback-bot/test-release/1/lock/100"}
    finally:
        store.close()
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=30)
