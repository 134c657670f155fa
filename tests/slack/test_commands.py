"""/rollback over real HTTP: every subcommand, free text (the word 'payload' included), bad input."""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rollback_bot import flows
from rollback_bot.clock import FakeClock
from rollback_bot.slack.commands import Parsed, parse
from rollback_bot.store.audit import timeline
from tests.flows.conftest import PLAYBOOK, TEMPLATES
from tests.helpers import FakeHTTP
from tests.slack.conftest import SlackEnv, make_env
from tests.slack.fake_slack import Call, FakeSlack, block_problems


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("", Parsed("help")),
        ("  STATUS ", Parsed("status")),
        ("ack", Parsed("ack")),
        ("ack #12", Parsed("ack", 12)),
        ("timeline 3", Parsed("timeline", 3)),
        ("note 4 rolled back by hand", Parsed("note", 4, "rolled back by hand")),
        ("note the payload service is down", Parsed("note", None, "the payload service is down")),
        ("playbook genai-release", Parsed("playbook", None, "genai-release")),
        ("please roll back!", Parsed("unknown", None, "please roll back!")),
    ],
)
def test_parse(text: str, parsed: Parsed) -> None:
    assert parse(text) == parsed


def reply(env: SlackEnv, text: str, user: str = "URESP") -> str:
    """The ephemeral answer, as Slack shows it: it rides on the HTTP response itself (no Slack call)."""
    response = env.slash(text, user=user)
    assert response.status_code == 200, (text, response.status_code, response.text)
    body = response.json()
    assert body["response_type"] == "ephemeral"
    problems = block_problems(body["blocks"])
    assert not problems, problems
    return Call("response", body).text_of_blocks()


def test_help_unknown_and_empty_get_a_helpful_reply(slack_env: SlackEnv) -> None:
    assert "`/rollback status`" in reply(slack_env, "help")
    assert "`/rollback status`" in reply(slack_env, "")
    weird = reply(slack_env, 'roll it back "now" :fire: & <@U1> payload=1')
    assert weird.startswith('I don\'t know `roll it back "now" :fire: &amp; &lt;@U1&gt; payload=1`.')
    assert "`/rollback status`" in weird


def test_status_ack_note_timeline_resolve_without_naming_the_only_incident(slack_env: SlackEnv) -> None:
    env = slack_env
    assert reply(env, "status") == ":white_check_mark: No open incidents, no rollouts under way."
    assert reply(env, "ack").startswith("There is no open incident.")
    env.open_incident()
    env.clock.advance(timedelta(minutes=5))
    env.poll()
    status = reply(env, "status")
    assert "*1 open incident(s)*" in status
    assert "*#1* `test-release` critical: step 1/3 *Flag*" in status
    assert "*not acknowledged*" in status and "Pending approvals: Lock (needs incident_commander)" in status
    assert "Key metrics: :x: errors=0.05, :white_check_mark: ack_time=5" in status
    assert reply(env, "ack") == "Acknowledged incident #1"
    assert reply(env, "ack 1", user="UIC").startswith(":no_entry: Already acknowledged by Rui (URESP) at 09:05:00")
    note = 'the payload service is down "again" :fire: <b>'
    assert reply(env, f"note {note}") == "Note added"
    assert len(flows.open_incidents(env.deps)) == 1
    with env.deps.store.session() as s:
        assert timeline(s, 1)[-1].details["text"] == note
    shown = reply(env, "timeline")
    assert shown.startswith("*Incident #1* (test-release, critical, still open): ")
    assert "Putting the post-mortem draft (incident-1-postmortem.md) in the incident's thread." in shown
    env.service.drain()
    [told] = env.slack.ephemerals("URESP")
    assert told.params["text"].endswith("The post-mortem draft (incident-1-postmortem.md) is in the incident's thread.")
    complete = env.wait_for(lambda: env.slack.of("files.completeUploadExternal"))[-1]
    assert complete.params["channel_id"] == "COPS" and complete.params["thread_ts"] == "1001.000100"
    draft = env.slack.uploaded()["incident-1-postmortem.md"].decode()
    assert draft.startswith("# Post-mortem: svc incident #1 (critical)")
    assert "**This incident is still open.**" in draft
    assert 'note by Rui (URESP): the payload service is down "again" :fire: &lt;b>' in draft  # shown, not HTML
    assert "acknowledged by Rui (URESP) as responder after 5.0 min" in draft
    assert any(
        name.endswith("-errors.png") and data.startswith(b"\x89PNG") for name, data in env.slack.uploaded().items()
    )
    assert reply(env, "resolve").startswith(":no_entry: Only incident_commander may resolve")
    assert reply(env, "resolve #1", user="UIC") == "Incident #1 resolved"
    assert reply(env, "status") == ":white_check_mark: No open incidents, no rollouts under way."
    again = reply(env, "timeline 1", user="UIC")  # within 5 minutes: a link to the last one, no second upload
    assert "resolved" in again and "put in the incident's thread 0 min ago by <@URESP>: file F" in again
    env.service.drain()
    assert len(env.slack.of("files.completeUploadExternal")) == 1
    assert reply(env, "timeline 99") == "There is no incident #99. `/rollback status` lists the open ones."


def test_playbook_quick_lookup_table(slack_env: SlackEnv) -> None:
    table = reply(slack_env, "playbook test-release")
    assert "Playbook test-release (svc)" in table
    assert "*2. Revert* (1h-2h)" in table and "\u2022 `errors == 0`" in table
    assert "\u2022 Roll back [rollback]: approver + safety_lead, stages 10%, 100%" in table
    assert "\u2022 `fatal` (critical): errors &gt; 0" in table
    assert reply(slack_env, "playbook nope") == "No playbook named `nope`. Known: `test-release`."


def test_commands_are_answered_while_slack_is_down(slack_env: SlackEnv) -> None:
    """The reply rides on the HTTP response: no Slack call is needed to answer a command. Role membership
    read before the outage is used (within ROLE_CACHE_MAX_STALE); a person whose group cannot be read is told
    so, and that is recorded as 'role unknown', never as a refusal."""
    env = slack_env
    env.open_incident()
    assert "*1 open incident(s)*" in reply(env, "status")  # Rui's group (SONCALL) is read here
    env.slack.down = True
    assert "`/rollback status`" in reply(env, "help", user="UX")
    assert reply(env, "ack") == "Acknowledged incident #1"
    env.clock.advance(timedelta(minutes=11))  # past ROLE_CACHE_MAX_STALE: group members are unknown now
    assert reply(env, "note 1 rolling back now", user="UAPP1").startswith(
        ":no_entry: I cannot check your role right now (Slack did not give the members of SAPPROVERS"
    )
    with env.deps.store.session() as s:
        kinds = [e.kind for e in timeline(s, 1)]
    assert "role.unknown" in kinds and "access.denied" not in kinds and kinds[-2:] == ["ack", "role.unknown"]


def test_a_post_mortem_that_cannot_be_built_is_said_to_the_asker_and_logged(
    tmp_path: Path, fake_slack: FakeSlack, fake_http: FakeHTTP, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The playbook's own post-mortem template broke after start (check ran before): no silent nothing."""
    folder = tmp_path / "team-templates"
    shutil.copytree(TEMPLATES, folder)
    (tmp_path / "test-release.yaml").write_text(PLAYBOOK.format(url=fake_http.url, templates=folder))
    metrics: dict[str, Any] = {"errors": 0.0, "latency": 300.0}
    fake_http.routes["/kpi"] = lambda rec: (200, metrics)
    env = make_env(f"sqlite:///{tmp_path}/slack.db", tmp_path, fake_slack, fake_http, clock, metrics)
    try:
        env.open_incident()
        (folder / "postmortem.md.j2").write_text("# {{ i.service }}\n{{ doc.no_such_field }}\n")
        with caplog.at_level(logging.ERROR, logger="rollback_bot"):
            assert "Putting the post-mortem draft" in reply(env, "timeline")
            env.service.drain()
        [told] = env.slack.ephemerals("URESP")
        assert told.params["text"] == (
            ":no_entry: Could not build the post-mortem draft of incident #1 (postmortem.md.j2 line 2: 'dict object' "
            "has no attribute 'no_such_field'). `rollback-bot check` on its playbook checks its templates."
        )
        assert not env.slack.of("files.completeUploadExternal")
        assert "post-mortem draft of incident 1 could not be built: " in caplog.text
        assert "/postmortem.md.j2:2: 'dict object' has no attribute 'no_such_field'" in caplog.text
        (folder / "postmortem.md.j2").unlink()  # fixed (the built-in one is used): the next ask uploads at once
        assert "Putting the post-mortem draft" in reply(env, "timeline")
        env.service.drain()
        env.wait_for(lambda: env.slack.of("files.completeUploadExternal"))
        assert fake_slack.problems == [], "every Block Kit payload must be valid"
    finally:
        env.server.shutdown()
        env.service.close()
