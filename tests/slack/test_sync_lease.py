"""Two syncers, one lease: an event recorded while another syncer (process) holds the incident's lease is
posted when that syncer is done, not at the next minute's catch-up."""

from __future__ import annotations

from typing import Any

from rollback_bot.store import audit
from tests.slack.conftest import SlackEnv


def test_an_event_recorded_during_someone_elses_sync_is_posted_when_it_is_done(slack_env: SlackEnv) -> None:
    env = slack_env
    env.open_incident()
    env.settle()
    sync = env.service.sync
    call = sync._call
    calls: list[str] = []

    def meanwhile(method: str, **kwargs: Any) -> dict[str, Any]:
        calls.append(method)
        if len(calls) == 1:  # mid-sync, another process records a note; its own sync finds the lease taken
            with env.deps.store.session() as s:
                audit.record(
                    s,
                    playbook="test-release",
                    incident_id=1,
                    kind="note",
                    at=env.deps.now(),
                    summary="note by Rui: from another process",
                    actor="URESP",
                )
                s.commit()
            sync.sync_incident(1)  # as that process would: the lease is taken, so it gives up
        return call(method, **kwargs)

    env.settle()
    sync._call = meanwhile  # type: ignore[method-assign]
    with env.deps.store.session() as s:  # a pending event for this sync to take: the note's turn comes after
        audit.record(s, playbook="test-release", incident_id=1, kind="note", at=env.deps.now(), summary="note 1")
        s.commit()
    sync.sync_incident(1)
    posted = [str(c.params.get("text")) for c in env.slack.thread()]
    assert any("note 1" in t for t in posted)
    assert any("from another process" in t for t in posted)
