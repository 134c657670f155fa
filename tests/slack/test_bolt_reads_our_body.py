"""Signed bodies that our parser accepts but Bolt's own parser or context extraction chokes on get a 400, not
a 500 with a traceback; a NUL hidden in a form field (%00) or a JSON string (\\u0000) is refused up front
(PostgreSQL cannot store it, so the note would fail as 'something went wrong')."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from tests.slack.conftest import SlackEnv


def test_bodies_bolt_cannot_read_get_400_and_nul_is_refused(slack_env: SlackEnv) -> None:
    slack_env.open_incident()
    command = urlencode({"command": "/rollback", "text": "status", "user_id": "UIC", "channel_id": "COPS"})
    assert slack_env.signed("{&" + command).status_code == 200  # Bolt would json.loads it and raise
    payload = {
        "type": "block_actions",
        "team": True,  # Bolt's build_context: "argument of type 'bool' is not iterable"
        "user": {"id": "UIC"},
        "actions": [{"action_id": "ack", "value": json.dumps({"i": 1})}],
    }
    answer = slack_env.signed(urlencode({"payload": json.dumps(payload)}))
    assert answer.status_code == 400, answer.text
    nul = urlencode({"command": "/rollback", "text": "note 1 a\x00b", "user_id": "UIC", "channel_id": "COPS"})
    assert slack_env.signed(nul).status_code == 400
    payload = {"type": "block_actions", "user": {"id": "UIC"}, "actions": [{"action_id": "ack", "value": "\x00"}]}
    assert slack_env.signed(urlencode({"payload": json.dumps(payload)})).status_code == 400
